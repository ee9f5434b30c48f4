"""A sampler that mines hard negatives with the model being trained, and re-mines as it learns.

``fit(pairs, modality="text", sampler="mined", sampler_options={"num_negatives": 1, "refresh_every": 200})``

Before training (the trainer's first ``refresh``) every row gets ``num_negatives`` hard negatives
mined by :func:`anycl.mining.mine_negative_ids` with the current model; they are re-mined at every
epoch start (``remine_each_epoch``) and every ``refresh_every`` optimiser steps, so the negatives stay
hard as the model changes (negatives mined once, before training, go stale). ``rows_for`` attaches
them to each batch's rows as ``negative_1`` … ``negative_k``; the batch builder asks the sampler for
that number (``num_negatives``).

Under ``accelerate launch`` every process mines its shard of the queries and corpus and the top-k are
merged across processes (:mod:`anycl.mining.shard`): the same negatives as one process, each process
embedding about 1/W of the items.

Batches are formed as by :class:`~anycl.sampling.InBatchSampler`, and the de-duplication also covers
the mined negatives: a row whose mined negative is another row's positive in the same batch would
make that positive a false negative, so such rows are kept apart. (Negatives re-mined in the middle
of an epoch take effect for the rest of it; that epoch's batches were planned with the previous ones.
With ``num_workers > 0`` they take effect at the next epoch.)
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence

from anycl.data.inputs import Rows
from anycl.errors import ConfigError
from anycl.mining.mine import mine_negative_ids
from anycl.mining.options import MiningOptions

from .base import register
from .in_batch import InBatchSampler

log = logging.getLogger("anycl")


@register("mined", "hard_negatives")
class MinedNegativeSampler(InBatchSampler):
    """In-batch sampler plus hard negatives mined (and re-mined) with the model being trained.

    Args:
        num_negatives: mined negatives per row.
        refresh_every: re-mine every N optimiser steps (None: only at epoch starts).
        remine_each_epoch: re-mine at the start of every epoch (the first mining always happens).
        corpus: documents to mine from (default: every distinct positive of the training data).
        range_min, range_max, max_score, absolute_margin, relative_margin, sampling, chunk_size:
            as in :class:`~anycl.mining.options.MiningOptions` (here the defaults are ``range_max=50`` and
            ``relative_margin=0.05``).
        mining_batch_size: embedding batch size while mining.
        mining_precision: ``"fp32"`` or ``"bf16"`` (embed under bfloat16 autocast while mining; about
            2× faster on CPUs with bf16 units). Default: ``"bf16"`` when ``fit`` trains with
            ``mixed_precision="bf16"``, else ``"fp32"``.
        verbose: print each pass's statistics.
        guide_filter: also drop mined candidates that ``fit``'s ``guide=`` model scores above the guide's
            anchor–positive score minus the margin (GISTEmbed's rule at mining time; default False). The
            guide's embeddings of the rows and corpus are computed once and reused at every re-mining.
        guide_margin, guide_margin_strategy: the margin of that filter (default: ``fit``'s
            ``guide_margin`` / ``guide_margin_strategy``).
        range_min_schedule: ``(start, end)``: a curriculum over ``range_min`` — each mining pass uses
            ``round(start + (end − start) · step / total_steps)`` (linear in training progress; the first
            pass ``start``), instead of the fixed ``range_min``. Default None (off).
        backend, faiss_options: the search (``"exact"``, default, or ``"faiss"``), as in
            :class:`~anycl.mining.options.MiningOptions`.
        cache_dir: a folder keeping the mining embeddings keyed by the model's state and each item's hash
            (:mod:`anycl.mining.embed_cache`): a re-run or resumed run from the same weights embeds nothing again,
            and a frozen guide's embeddings are reused across runs. cache_keep: model keys kept in the
            folder (default 4, so re-mining as the model trains does not fill the disk; None: all; a key is
            one state with one tower, prompt and precision, so a pass may use up to 4 with a guide).
        shuffle, deduplicate, seed, min_batch_size: as in :class:`~anycl.sampling.InBatchSampler`.

    The mining settings are checked at once and kept as one :class:`~anycl.mining.options.MiningOptions`,
    ``mining_options`` (with ``on_short="random"``: a short query is filled up, never dropped); each pass
    sets its ``range_min``, ``seed`` (the sampler's seed and the step), ``precision`` and, with
    ``guide_filter``, the guide's margin over it.
    """

    def __init__(
        self,
        num_negatives: int = 1,
        refresh_every: Optional[int] = None,
        remine_each_epoch: bool = True,
        corpus: Optional[Sequence[Any]] = None,
        range_min: int = 0,
        range_max: int = 50,
        max_score: Optional[float] = None,
        absolute_margin: Optional[float] = None,
        relative_margin: Optional[float] = 0.05,
        sampling: str = "top",
        mining_batch_size: int = 64,
        chunk_size: int = 1024,
        mining_precision: Optional[str] = None,
        verbose: bool = True,
        guide_filter: bool = False,
        guide_margin: Optional[float] = None,
        guide_margin_strategy: Optional[str] = None,
        range_min_schedule: Optional[Sequence[int]] = None,
        backend: str = "exact",
        faiss_options: Optional[Dict[str, Any]] = None,
        cache_dir: Optional[str] = None,
        cache_keep: Optional[int] = 4,
        **in_batch_options,
    ):
        super().__init__(**in_batch_options)
        if range_min_schedule is not None:
            if (
                not isinstance(range_min_schedule, (list, tuple))
                or len(range_min_schedule) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in range_min_schedule)
            ):
                raise ConfigError(f"range_min_schedule must be (start, end), two ints >= 0, got {range_min_schedule!r}")
            if range_min:
                raise ConfigError("give range_min or range_min_schedule, not both (the schedule sets range_min)")
            range_min = max(range_min_schedule)  # the window checks below hold for every pass
        # the pass's options, checked now; a pass sets range_min, seed, precision and the guide's margin
        self.mining_options = MiningOptions(
            num_negatives=num_negatives,
            range_min=range_min,
            range_max=range_max,
            max_score=max_score,
            absolute_margin=absolute_margin,
            relative_margin=relative_margin,
            sampling=sampling,
            batch_size=mining_batch_size,
            chunk_size=chunk_size,
            on_short="random",
            precision=mining_precision or "fp32",
            guide_margin=0.0 if guide_margin is None else guide_margin,
            guide_margin_strategy=guide_margin_strategy or "absolute",
            backend=backend,
            faiss_options=faiss_options,
            cache_dir=cache_dir,
            cache_keep=cache_keep,
        )
        if refresh_every is not None and (not isinstance(refresh_every, int) or refresh_every < 1):
            raise ConfigError(f"refresh_every must be an int >= 1 or None, got {refresh_every!r}")
        self.num_negatives = num_negatives
        self.refresh_every = refresh_every
        self.remine_each_epoch = remine_each_epoch
        self.corpus = list(corpus) if corpus is not None else None
        self.mining_precision = mining_precision  # None: fit sets it from mixed_precision ("bf16" → "bf16")
        self.verbose = verbose
        self.guide_filter = bool(guide_filter)
        self.guide_margin, self.guide_margin_strategy = guide_margin, guide_margin_strategy
        self.range_min_schedule = None if range_min_schedule is None else tuple(range_min_schedule)
        self.total_steps: Optional[int] = None  # the trainer sets it (range_min_schedule's progress)
        self._guide = None  # the guide model (set_guide), its embeddings cached across passes
        self._guide_cache: Dict[str, Any] = {}
        self.show_progress = False  # the trainer sets it from the `progress` option: a bar per mining pass
        self.negatives: Optional[List[List[Any]]] = None  # per row: the mined items
        self.history: List[Dict[str, Any]] = []  # per mining pass: step + statistics
        self._mined_at: Optional[int] = None
        self._key_negatives: Optional[List[List[Any]]] = None  # the negatives this epoch's batches were planned with
        self._restored_key_negatives: Optional[List[List[Any]]] = None

    def set_guide(self, guide_model, margin: float = 0.0, strategy: str = "absolute") -> None:
        """The guide model for ``guide_filter`` (``fit`` passes its ``guide=`` model); the sampler's own
        ``guide_margin`` / ``guide_margin_strategy`` win over ``margin`` / ``strategy`` when given."""
        self._guide = guide_model
        self._guide_cache = {}
        if self.guide_margin is None:
            self.guide_margin = margin
        if self.guide_margin_strategy is None:
            self.guide_margin_strategy = strategy

    def range_min_at(self, step: int) -> int:
        """The ``range_min`` of a mining pass at optimiser ``step`` (the schedule, or the fixed value)."""
        if self.range_min_schedule is None:
            return self.mining_options.range_min
        start, end = self.range_min_schedule
        progress = min(max(step / self.total_steps, 0.0), 1.0) if self.total_steps else 0.0
        return int(round(start + (end - start) * progress))

    def refresh(self, model, rows: Rows, step: int) -> None:
        if rows.streaming:
            raise ConfigError(
                "the 'mined' sampler needs a dataset with a length (mining embeds every row); "
                "materialise the stream or use sampler='in_batch'"
            )
        if not rows.has_positive:
            raise ConfigError(
                f"the 'mined' sampler needs (anchor, positive) pairs; the data's columns are {rows.columns}"
            )
        if self._mined_at == step:
            return  # an epoch start that is also a refresh_every step: mine once
        periodic = bool(self.refresh_every and step > 0 and step % self.refresh_every == 0)
        if self.negatives is not None and not periodic and not self.remine_each_epoch:
            return
        if self.guide_filter and self._guide is None:
            raise ConfigError(
                "the mined sampler's guide_filter needs a guide model: fit(..., guide='start') "
                "(or call sampler.set_guide(model))"
            )
        guide: Dict[str, Any] = {}
        if self.guide_filter:
            guide = dict(
                guide=self._guide,
                guide_cache=self._guide_cache,
                guide_margin=float(self.guide_margin or 0.0),
                guide_margin_strategy=self.guide_margin_strategy or "absolute",
            )
        range_min = self.range_min_at(step)
        per_row, docs, stats = mine_negative_ids(
            model,
            rows.column("anchor"),
            rows.column("positive"),
            self.corpus,
            options=self.mining_options,
            range_min=range_min,
            seed=self.seed * 1_000_003 + step,
            precision=self.mining_precision or "fp32",
            show_progress=self.show_progress,
            **guide,
        )
        self.negatives = [[docs[j] for j in ids] for ids in per_row]
        self._keys = None  # batches must also keep mined negatives apart from other rows' positives
        self._mined_at = step
        self.history.append({"step": step, "range_min": range_min, **stats.as_dict()})
        if self.verbose:
            sched = f" (range_min {range_min})" if self.range_min_schedule is not None else ""
            print(f"[step {step}]{sched} {stats}")
        log.info("mining at step %d:\n%s", step, stats)

    def _row_keys(self, rows: Rows) -> List[tuple]:
        if self._keys is not None and self._keys_for == id(rows):
            return self._keys
        keys = super()._row_keys(rows)
        if self._key_negatives is not None:
            key = self.key_fns.get("positive") or (lambda x: x)
            keys = [k + tuple(key(n) for n in negs) for k, negs in zip(keys, self._key_negatives)]
            self._keys = keys
        return keys

    def plan(self, rows: Rows, epoch: int, batch_size: int) -> List[List[int]]:
        # An epoch's batches keep rows apart by the negatives current when it was planned. A resumed run
        # plans its epoch with the ones saved in the checkpoint, so it forms the same batches even when
        # negatives were re-mined between the epoch's start and the checkpoint.
        wanted = self._restored_key_negatives if self._restored_key_negatives is not None else self.negatives
        self._restored_key_negatives = None
        if wanted is not self._key_negatives:
            self._key_negatives, self._keys = wanted, None
        return super().plan(rows, epoch, batch_size)

    def rows_for(self, rows: Rows, indices: Sequence[int]) -> List[dict]:
        if self.negatives is None:
            raise RuntimeError("the 'mined' sampler was asked for rows before mining (refresh) ran")
        out = []
        for i in indices:
            row = dict(rows[i])
            for j, neg in enumerate(self.negatives[i]):
                row[f"negative_{j + 1}"] = neg
            out.append(row)
        return out

    def state_dict(self):
        planned = None if self._key_negatives is self.negatives else self._key_negatives
        return {"seed": self.seed, "negatives": self.negatives, "mined_at": self._mined_at, "planned_with": planned}

    def load_state_dict(self, state):
        self.seed = state.get("seed", self.seed)
        self.negatives = state.get("negatives", self.negatives)
        self._restored_key_negatives = state.get("planned_with") or self.negatives
        self._mined_at = state.get("mined_at", self._mined_at)

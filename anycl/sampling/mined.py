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
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from anycl.data.inputs import Rows
from anycl.errors import ConfigError
from anycl.mining.mine import mine_negative_ids
from anycl.mining.options import OPTION_NAMES, MiningOptions

from .base import register
from .in_batch import InBatchSampler

log = logging.getLogger("anycl")


# The sampler's own defaults of the mining options (MiningOptions' defaults otherwise). Short queries are
# always filled at random, so that every row trains (on_short="random").
MINED_DEFAULTS = MiningOptions(range_max=50, relative_margin=0.05, cache_keep=4, on_short="random")
# two mining options have other names among the sampler's options (fit's batch_size is the training batch)
SAMPLER_NAMES = {"batch_size": "mining_batch_size", "precision": "mining_precision", "engine": "mining_engine"}
# mining options the sampler sets itself (and the seed: a pass's is the sampler's seed and the step; ``seed``
# among the sampler's options is the sampler's own)
PASS_SET = {
    "show_progress": "the trainer sets it from fit's progress option",
    "on_short": "short queries are always filled at random, so every row trains",
    "shard": "every process of a run mines its shard",
}
# left unset (None), these follow fit: the precision its mixed_precision, the margins its guide_margin(_strategy)
FOLLOWS_FIT = ("precision", "guide_margin", "guide_margin_strategy")


def mining_values(options: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The sampler's keyword options split into (mining options by their :class:`MiningOptions` name, the
    rest: the in-batch sampler's). ``seed`` is the sampler's (a pass's seed derives from it)."""
    by_sampler_name = {v: k for k, v in SAMPLER_NAMES.items()}
    mining: Dict[str, Any] = {}
    rest: Dict[str, Any] = {}
    for name, value in options.items():
        if name in PASS_SET:
            raise ConfigError(f"the mined sampler sets {name} itself ({PASS_SET[name]}); leave it out of its options")
        if name in SAMPLER_NAMES:
            raise ConfigError(
                f"the mined sampler's option for the mining {name} is {SAMPLER_NAMES[name]!r} "
                f"(or give mining_options=MiningOptions({name}=...))"
            )
        field = by_sampler_name.get(name, name)
        if field in OPTION_NAMES and field != "seed":
            if not (field in FOLLOWS_FIT and value is None):
                mining[field] = value
        else:
            rest[name] = value
    return mining, rest


def check_schedule(schedule: Any) -> None:
    if (
        not isinstance(schedule, (list, tuple))
        or len(schedule) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in schedule)
    ):
        raise ConfigError(f"range_min_schedule must be (start, end), two ints >= 0, got {schedule!r}")


@register("mined", "hard_negatives")
class MinedNegativeSampler(InBatchSampler):
    """In-batch sampler plus hard negatives mined (and re-mined) with the model being trained.

    Args:
        mining_options: the passes' :class:`~anycl.mining.options.MiningOptions` (default
            :data:`MINED_DEFAULTS`: ``range_max=50``, ``relative_margin=0.05``, ``cache_keep=4``, otherwise
            MiningOptions' defaults). A record given is used as it is (its precision and guide margin too);
            ``on_short`` is always ``"random"`` (every row trains).
        refresh_every: re-mine every N optimiser steps (None: only at epoch starts).
        remine_each_epoch: re-mine at the start of every epoch (the first mining always happens).
        corpus: documents to mine from (default: every distinct positive of the training data).
        verbose: print each pass's statistics.
        guide_filter: also drop mined candidates that ``fit``'s ``guide=`` model scores above the guide's
            anchor–positive score minus the margin (GISTEmbed's rule at mining time; default False). The
            guide's embeddings of the rows and corpus are computed once and reused at every re-mining.
        range_min_schedule: ``(start, end)``: a curriculum over ``range_min`` — each mining pass uses
            ``round(start + (end − start) · step / total_steps)`` (linear in training progress; the first
            pass ``start``), instead of the fixed ``range_min``. Default None (off).
        **options: any mining option by keyword, over ``mining_options`` (``num_negatives=3``; the fields of
            :class:`~anycl.mining.options.MiningOptions`, with ``batch_size`` named ``mining_batch_size`` and
            ``precision`` named ``mining_precision``), and the options of
            :class:`~anycl.sampling.InBatchSampler` (``shuffle``, ``deduplicate``, ``seed``, ...). Left unset,
            ``mining_precision`` follows ``fit``'s ``mixed_precision`` as resolved (``"bf16"``, also the default
            ``"auto"`` on a machine with bf16 units, mines in bf16; else ``"fp32"``) and ``guide_margin`` /
            ``guide_margin_strategy`` follow ``fit``'s.

    The mining options are checked at once and kept as one record, ``mining_options``; each pass sets its
    ``range_min`` (the schedule), ``seed`` (the sampler's seed and the step) and ``show_progress`` over it.

    What embeds in a pass: the option ``mining_engine`` (MiningOptions' ``engine``: ``"torch-bf16"``,
    ``"onnx"``, where each pass exports the current weights, ``"onnx-int8"``, ``"torch"``;
    :mod:`anycl.model.engines`); named, ``fit`` leaves ``mining_precision`` alone.
    """

    def __init__(
        self,
        mining_options: Optional[MiningOptions] = None,
        *,
        refresh_every: Optional[int] = None,
        remine_each_epoch: bool = True,
        corpus: Optional[Sequence[Any]] = None,
        verbose: bool = True,
        guide_filter: bool = False,
        range_min_schedule: Optional[Sequence[int]] = None,
        **options: Any,
    ):
        given, in_batch_options = mining_values(options)
        super().__init__(**in_batch_options)
        if mining_options is not None and not isinstance(mining_options, MiningOptions):
            raise ConfigError(
                f"mining_options must be a MiningOptions, got {type(mining_options).__name__} "
                f"{mining_options!r:.60} (or give the mining options by keyword, e.g. num_negatives=3)"
            )
        if range_min_schedule is not None:
            check_schedule(range_min_schedule)
        record = MiningOptions.resolve(MINED_DEFAULTS if mining_options is None else mining_options, **given)
        if range_min_schedule is not None:
            if record.range_min:
                raise ConfigError("give range_min or range_min_schedule, not both (the schedule sets range_min)")
            record = replace(record, range_min=max(range_min_schedule))  # the window checks hold for every pass
        self.mining_options = record if record.on_short == "random" else replace(record, on_short="random")
        # what fit may still set: the names left unset (a record given is used as it is)
        self._unset = set() if mining_options is not None else {n for n in FOLLOWS_FIT if n not in given}
        if refresh_every is not None and (not isinstance(refresh_every, int) or refresh_every < 1):
            raise ConfigError(f"refresh_every must be an int >= 1 or None, got {refresh_every!r}")
        self.refresh_every = refresh_every
        self.remine_each_epoch = remine_each_epoch
        self.corpus = list(corpus) if corpus is not None else None
        self.verbose = verbose
        self.guide_filter = bool(guide_filter)
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

    @property
    def num_negatives(self) -> int:
        """Mined negatives per row (the batch builder's ``negative_1`` … ``negative_k``)."""
        return self.mining_options.num_negatives

    @property
    def mining_precision(self) -> Optional[str]:
        """The passes' precision; None while neither it nor ``mining_engine`` is set (``fit`` then sets it from
        ``mixed_precision``); with an engine named and no precision, the engine."""
        opts = self.mining_options
        if "precision" in self._unset and opts.engine == "auto":
            return None
        return opts.precision or opts.engine

    @mining_precision.setter
    def mining_precision(self, value: str) -> None:
        self._set(precision=value)

    def _set(self, **values: Any) -> None:
        if values:
            self.mining_options = replace(self.mining_options, **values)  # checked again
            self._unset -= set(values)

    def set_guide(self, guide_model, margin: float = 0.0, strategy: str = "absolute") -> None:
        """The guide model for ``guide_filter`` (``fit`` passes its ``guide=`` model); ``margin`` / ``strategy``
        set the filter's ``guide_margin`` / ``guide_margin_strategy`` where the sampler's options left them unset."""
        self._guide = guide_model
        self._guide_cache = {}
        unset = {"guide_margin": margin, "guide_margin_strategy": strategy}
        self._set(**{k: v for k, v in unset.items() if k in self._unset})

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
        guide: Dict[str, Any] = dict(guide=self._guide, guide_cache=self._guide_cache) if self.guide_filter else {}
        range_min = self.range_min_at(step)
        per_row, docs, stats = mine_negative_ids(
            model,
            rows.column("anchor"),
            rows.column("positive"),
            self.corpus,
            options=self.mining_options,
            range_min=range_min,
            seed=self.seed * 1_000_003 + step,
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

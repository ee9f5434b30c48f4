"""The options of one hard-negative mining pass, in one frozen, validated record.

:func:`anycl.mining.mine_hard_negatives` and :func:`anycl.mining.mine_negative_ids` take them as keywords
(``num_negatives=3, relative_margin=0.05``), as ``options=MiningOptions(...)``, or both (the keywords then
override the record's values); the ``mined`` sampler and ``anycl mine`` build one as well. Each bad value
is a :class:`~anycl.errors.ConfigError` naming the option, raised when the record is made: before a model
is loaded or anything embedded.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Optional

from anycl.errors import ConfigError, did_you_mean
from anycl.losses.guide_mask import check_margin
from anycl.model.engines import engine_from
from anycl.search.faiss_index import searcher


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class MiningOptions:
    """How a mining pass searches, filters and picks its negatives (the rules: :mod:`anycl.mining`).

    Attributes:
        num_negatives: negatives per row, written as ``negative_1`` … ``negative_k``.
        range_min, range_max: skip the best ``range_min`` candidates, consider up to rank ``range_max``
            (the window must hold at least ``num_negatives`` ranks).
        max_score, absolute_margin, relative_margin: the false-negative filters (rules 3–5 of
            :mod:`anycl.mining`; ``None``: off; the margins are numbers >= 0).
        sampling: ``"top"`` (hardest first) or ``"random"`` within the filtered window.
        batch_size: embedding batch size. chunk_size: queries and documents per block of the search.
        seed: for ``sampling="random"`` and random filling.
        on_short: a query left with fewer than ``num_negatives`` candidates: ``"drop"`` its rows
            (counted in the statistics) or ``"random"``: fill up with random documents that are not its
            positives.
        engine: what embeds the queries and corpus (:mod:`anycl.model.engines`): ``"auto"`` (the default:
            bfloat16 autocast where the device has bf16 units, else float32; a model that is not an anycl model
            runs as it is), ``"torch"`` (float32), ``"torch-bf16"``, ``"onnx"`` or ``"onnx-int8"`` (ONNX Runtime
            on the CPU, anycl models; exported once per state of the weights). Scores are compared in float32
            either way; the negatives found barely change (docs/scale.md).
        precision: the older name of the torch engines: ``"fp32"`` (``engine="torch"``) or ``"bf16"``
            (``engine="torch-bf16"``); None (the default): not given. Given, it settles ``engine="auto"``;
            with another engine it must name the same one.
        show_progress: a progress bar (items/s, ETA) over the embedding of queries and corpus (the main
            process's only).
        guide_margin, guide_margin_strategy: with a ``guide=`` model, a candidate the guide rates above the
            guide's positive score minus ``guide_margin`` (``"absolute"``) or minus ``guide_margin ×
            |guide positive score|`` (``"relative"``) is rejected (rule 6; counted as ``guide``).
        backend: ``"exact"`` (every score computed) or ``"faiss"`` (a FAISS index, the optional ``faiss``
            extra; :mod:`anycl.search.faiss_index`). faiss_options: ``{"index": "flat" | "ivf", "nlist": int,
            "nprobe": int}`` (default flat: exhaustive; ivf: approximate and faster).
        cache_dir: a folder keeping the embeddings between calls, keyed by the model's state and each
            item's hash (:mod:`anycl.mining.embed_cache`): a re-run with an unchanged model embeds only new items.
            cache_keep: how many model keys (one per model state, tower, prompt and engine) the folder
            keeps (default all; checked when the folder is opened, as it applies only with ``cache_dir``).
        shard: under several processes, each embeds and searches its share (:mod:`anycl.mining.shard`);
            ``False`` for a call made in one process only (that process mines everything alone).

    Frozen: derive a variant with :func:`dataclasses.replace` (validated again).
    """

    num_negatives: int = 1
    range_min: int = 0
    range_max: int = 100
    max_score: Optional[float] = None
    absolute_margin: Optional[float] = None
    relative_margin: Optional[float] = None
    sampling: str = "top"
    batch_size: int = 64
    chunk_size: int = 1024
    seed: int = 0
    on_short: str = "drop"
    precision: Optional[str] = None
    show_progress: bool = False
    guide_margin: float = 0.0
    guide_margin_strategy: str = "absolute"
    backend: str = "exact"
    faiss_options: Optional[Dict[str, Any]] = None
    cache_dir: Optional[str] = None
    cache_keep: Optional[int] = None
    shard: bool = True
    engine: str = "auto"

    def __post_init__(self) -> None:
        ints = (("num_negatives", 1), ("range_min", 0), ("range_max", 1), ("batch_size", 1), ("chunk_size", 1))
        for name, low in ints + (("seed", None),):
            v = getattr(self, name)
            if not _is_int(v) or (low is not None and v < low):
                raise ConfigError(f"{name} must be an int" + (f" >= {low}" if low is not None else "") + f", got {v!r}")
            object.__setattr__(self, name, int(v))  # a numpy integer kept as a plain int
        if self.range_max - self.range_min < self.num_negatives:
            raise ConfigError(
                f"the window range_min={self.range_min}..range_max={self.range_max} holds fewer than "
                f"num_negatives={self.num_negatives} candidates; raise range_max"
            )
        for name, choices in (("sampling", ("top", "random")), ("on_short", ("drop", "random"))):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be {choices[0]!r} or {choices[1]!r}, got {getattr(self, name)!r}")
        engine_from(self.precision, self.engine)  # each checked, and that they agree
        if self.max_score is not None and not _is_number(self.max_score):
            raise ConfigError(f"max_score must be a number or None, got {self.max_score!r}")
        for name in ("absolute_margin", "relative_margin"):
            v = getattr(self, name)
            if v is not None and (not _is_number(v) or v < 0):
                raise ConfigError(f"{name} must be a number >= 0, got {v!r}")
        check_margin(self.guide_margin, self.guide_margin_strategy)
        searcher(self.backend, self.faiss_options)  # a bad backend, bad faiss_options or a missing faiss

    @property
    def embed_engine(self) -> str:
        """The engine that ``engine`` and ``precision`` name together (``"auto"`` is settled per model when it
        embeds: :func:`anycl.model.embed.model_engine`)."""
        return engine_from(self.precision, self.engine)

    @classmethod
    def resolve(cls, options: Optional[MiningOptions] = None, **values: Any) -> MiningOptions:
        """``options`` (default: the defaults) with the keyword ``values`` set over it. An unknown keyword,
        or an ``options`` that is not a :class:`MiningOptions`, is a :class:`~anycl.errors.ConfigError`."""
        if options is not None and not isinstance(options, cls):
            raise ConfigError(
                f"options must be a MiningOptions, got {type(options).__name__} {options!r:.60} (pass "
                f"num_negatives and the other mining options by keyword, or as options=MiningOptions(...))"
            )
        unknown = sorted(set(values) - set(OPTION_NAMES))
        if unknown:
            raise ConfigError(
                f"unknown mining option(s) {unknown}{did_you_mean(unknown[0], list(OPTION_NAMES))}; the options "
                f"are {', '.join(OPTION_NAMES)}"
            )
        if options is None:
            return cls(**values)
        return replace(options, **values) if values else options


OPTION_NAMES = tuple(f.name for f in fields(MiningOptions))

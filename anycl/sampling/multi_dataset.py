"""Several data sets in one run: ``fit({"nli": ds1, "qa": ds2}, loss={"nli": "infonce", "qa": "cosent"})``.

Every batch comes from one data set (never mixed) and is scored by that data set's loss. The order of
the batches, per epoch (``multi_dataset_sampling``):

- ``"proportional"`` (default): every batch of every data set once, the data sets drawn at random in
  proportion to their numbers of batches (seeded by the sampler's seed and the epoch);
- ``"round_robin"``: one batch of each data set in turn, until the data set with the fewest batches
  runs out (as sentence-transformers' round-robin sampler: each data set weighs the same).

Each data set gets its own sampler of the kind ``sampler`` names (its own de-duplication, mined
negatives, label groups), so :class:`MultiDatasetSampler` only interleaves their plans. The plan is
a pure function of (seed, epoch) and the sub-samplers' state, so a checkpoint resumes it exactly.
"""

from __future__ import annotations

import bisect
import random
from typing import Any, Dict, List, Mapping, Optional, Sequence

from torch import nn

from anycl.data.inputs import ITEM_COLUMNS, NOT_ITEMS, Rows, negative_columns
from anycl.errors import ConfigError

from .factory import Sampler

DATASET = "_dataset"  # the key naming a row's data set in the row dicts of a multi-dataset run
STRATEGIES = ("proportional", "round_robin")


def is_multi_dataset(data: Any) -> bool:
    """A mapping of names to data sets (not a mapping of the convention's columns to values)."""
    if not isinstance(data, Mapping) or not data:
        return False
    convention = set(ITEM_COLUMNS) | set(NOT_ITEMS)
    return not all(k in convention or negative_columns([k]) for k in data)


class MultiRows(Rows):
    """The rows of several data sets one after another; ``parts`` keeps each data set's own :class:`Rows`."""

    def __init__(self, parts: Mapping[str, Rows]):
        self.parts = dict(parts)
        for name, r in self.parts.items():
            if r.streaming:
                raise ConfigError(
                    f"data set {name!r} is streamed; several data sets in one run need data sets "
                    f"with a length (load them, or train on one streamed data set)"
                )
        self.names = list(self.parts)
        self.offsets, n = [], 0
        for name in self.names:
            self.offsets.append(n)
            n += len(self.parts[name])
        columns: List[str] = []
        for r in self.parts.values():
            columns += [c for c in r.columns if c not in columns]
        super().__init__(
            self.parts,
            columns,
            n,
            self._get,
            self._iter_all,
            None,
            f"{len(self.parts)} data sets: " + ", ".join(f"{k} ({len(v)} rows)" for k, v in self.parts.items()),
        )

    def locate(self, i: int) -> tuple:
        """(data set name, index within it) of global row ``i``."""
        k = bisect.bisect_right(self.offsets, int(i)) - 1
        return self.names[k], int(i) - self.offsets[k]

    def _get(self, i: int) -> dict:
        name, j = self.locate(i)
        return {**self.parts[name][j], DATASET: name}

    def _iter_all(self):
        for name in self.names:
            for r in self.parts[name]:
                yield {**r, DATASET: name}

    def column(self, name: str) -> list:
        out: list = []
        for part in self.parts.values():
            out += part.column(name) if name in part.columns else [None] * len(part)
        return out


class MultiDatasetSampler(Sampler):
    """Interleaves the plans of one sampler per data set (see the module docstring)."""

    def __init__(self, samplers: Mapping[str, Sampler], strategy: str = "proportional", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ConfigError(f"multi_dataset_sampling must be one of {list(STRATEGIES)}, got {strategy!r}")
        self.samplers = dict(samplers)
        self.strategy, self.seed = strategy, seed
        every = [r for r in (getattr(s, "refresh_every", None) for s in self.samplers.values()) if r]
        self.refresh_every = min(every) if every else None
        self.stats: Dict[str, int] = {}

    # rows: the MultiRows that fit builds for several data sets (not a Rows, hence the ignores)
    def plan(self, rows: MultiRows, epoch: int, batch_size: int) -> List[List[int]]:  # type: ignore[override]
        plans = {}
        for k, name in enumerate(rows.names):
            off = rows.offsets[k]
            plans[name] = [[off + i for i in b] for b in self.samplers[name].plan(rows.parts[name], epoch, batch_size)]
        rng = random.Random(self.seed * 1_000_003 + epoch * 7 + 5)
        out: List[List[int]] = []
        if self.strategy == "round_robin":
            shortest = min(len(p) for p in plans.values())
            for t in range(shortest):
                out += [plans[name][t] for name in rows.names]
        else:
            order = [name for name in rows.names for _ in plans[name]]
            rng.shuffle(order)
            nxt = {name: 0 for name in rows.names}
            for name in order:
                out.append(plans[name][nxt[name]])
                nxt[name] += 1
        self.stats = {f"{name}_batches": len(p) for name, p in plans.items()}
        return out

    def rows_for(self, rows: MultiRows, indices: Sequence[int]) -> List[dict]:  # type: ignore[override]
        name, _ = rows.locate(indices[0])
        local = [rows.locate(i)[1] for i in indices]
        return [{**r, DATASET: name} for r in self.samplers[name].rows_for(rows.parts[name], local)]

    def refresh(self, model, rows: MultiRows, step: int) -> None:  # type: ignore[override]
        for name in rows.names:
            self.samplers[name].refresh(model, rows.parts[name], step)

    def state_dict(self) -> Dict[str, Any]:
        return {"seed": self.seed, "samplers": {k: s.state_dict() for k, s in self.samplers.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.seed = state.get("seed", self.seed)
        for k, sub in (state.get("samplers") or {}).items():
            if k in self.samplers:
                self.samplers[k].load_state_dict(sub)


class MultiBatchBuilder:
    """Builds each batch with its data set's :class:`~anycl.data.batching.BatchBuilder` and names the data set
    in the batch (``batch["dataset"]``), for the loss to pick."""

    def __init__(self, builders: Mapping[str, Any]):
        self.builders = dict(builders)

    @property
    def skipped(self) -> int:
        return sum(b.skipped for b in self.builders.values())

    @property
    def skipped_examples(self) -> List[str]:
        return [e for b in self.builders.values() for e in b.skipped_examples][:5]

    def build(self, rows: List[dict], generator, train: bool = True) -> Optional[Dict[str, Any]]:
        name = rows[0][DATASET]
        batch = self.builders[name].build(
            [{k: v for k, v in r.items() if k != DATASET} for r in rows], generator, train
        )
        if batch is not None:
            batch["dataset"] = name
        return batch


class MultiLoss(nn.Module):
    """One loss per data set; ``select(name)`` gives the batch's loss (the trainer calls it)."""

    def __init__(self, losses: Mapping[str, nn.Module]):
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        for name, loss in self.losses.items():
            if getattr(loss, "momentum_target", None):
                raise ConfigError(
                    f"the loss of data set {name!r} keeps a momentum target (byol/moco style), which "
                    f"several data sets in one run do not support; train it on its own"
                )
        self.registry_name = "+".join(
            sorted({getattr(fn, "registry_name", type(fn).__name__) for fn in self.losses.values()})
        )
        self.in_batch_negatives = any(getattr(fn, "in_batch_negatives", True) for fn in self.losses.values())

    def select(self, name: str) -> nn.Module:
        return self.losses[name]

    def build(self, embedding_dim: int) -> None:
        for loss in self.losses.values():
            build = getattr(loss, "build", None)
            if build is not None:
                build(embedding_dim)

    def forward(self, *a, **kw):  # pragma: no cover - the trainer selects a data set's loss first
        raise RuntimeError("MultiLoss scores a batch through select(batch['dataset'])")


def per_dataset(value: Any, names: Sequence[str]) -> Optional[Dict[str, Any]]:
    """``{name: x}`` naming exactly the data sets → that mapping; otherwise None (one value for all)."""
    if isinstance(value, Mapping) and value and set(value) <= set(names):
        if set(value) != set(names):
            raise ConfigError(
                f"the per-data-set mapping names {sorted(value)}, but the data sets are {sorted(names)}; "
                f"give every data set its entry"
            )
        return dict(value)
    return None


def check_same_columns(parts: Mapping[str, Rows], loss: Any) -> None:
    """One loss for several data sets needs the same columns in each."""
    cols = {name: list(r.columns) for name, r in parts.items()}
    if len({tuple(c) for c in cols.values()}) > 1:
        raise ConfigError(
            f"one loss ({loss!r}) for data sets with different columns: "
            + "; ".join(f"{k}: {v}" for k, v in cols.items())
            + f". Give each its loss, e.g. loss={{{', '.join(repr(k) + ': ...' for k in cols)}}}, or align the columns"
        )

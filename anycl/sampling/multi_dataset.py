"""Several data sets in one run, as batches: ``fit({"nli": ds1, "qa": ds2}, loss={"nli": "infonce", "qa": "cosent"})``.

Every batch comes from one data set (never mixed) and is scored by that data set's loss. The order of
the batches, per epoch (``multi_dataset_sampling``):

- ``"proportional"`` (default): every batch of every data set once, the data sets drawn at random in
  proportion to their numbers of batches (seeded by the sampler's seed and the epoch);
- ``"round_robin"``: one batch of each data set in turn, until the data set with the fewest batches
  runs out (as sentence-transformers' round-robin sampler: each data set weighs the same).

Each data set gets its own sampler of the kind ``sampler`` names (its own de-duplication, mined
negatives, label groups), so :class:`MultiDatasetSampler` only interleaves their plans. The plan is
a pure function of (seed, epoch) and the sub-samplers' state, so a checkpoint resumes it exactly.

The other parts of a multi-dataset run: the data sets' rows, :mod:`anycl.data.multi`; the loss of each
batch, :mod:`anycl.losses.multi_dataset`.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping, Optional, Sequence

from anycl.data.multi import DATASET, MultiRows  # MultiRows: importable from here too, as before
from anycl.errors import ConfigError

from .factory import Sampler

STRATEGIES = ("proportional", "round_robin")


class MultiDatasetSampler(Sampler):
    """Interleaves the plans of one sampler per data set (see the module docstring)."""

    def __init__(self, samplers: Mapping[str, Sampler], strategy: str = "proportional", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ConfigError(f"multi_dataset_sampling must be one of {list(STRATEGIES)}, got {strategy!r}")
        self.samplers = dict(samplers)
        self.strategy, self.seed = strategy, seed
        every = [s.refresh_every for s in self.samplers.values() if s.refresh_every]
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

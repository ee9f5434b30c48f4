"""``sampler="group_by_label"``: batches in which every label present has at least two items.

Supervised contrastive losses (``supcon``) and batch-hard triplets need positives *inside* the batch:
with shuffled batches, a label that lands in a batch once has no positive there, which depends on
chance. This sampler, per epoch (seeded by ``seed`` and the epoch):

1. shuffles the rows of each label and cuts them into groups of ``items_per_label`` (a last group of
   one joins the group before it, so every group holds ≥ 2 rows of one label);
2. shuffles the groups and fills batches with whole groups; a group that does not fit in the rest of
   the batch (or whose items already sit in it — hash de-duplication, as the other samplers) waits
   for the next batch.

So every label in a batch has ≥ 2 items, and batches hold ``batch_size`` rows or a few fewer. Labels
with a single row cannot be paired and are left out (counted in ``stats["unpaired"]``); if every label is
unique, there is nothing to group and the sampler raises ConfigError.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List

from anycl.data.inputs import LABEL, Rows
from anycl.errors import ConfigError

from .base import Sampler, register


@register("group_by_label", "label_groups")
class GroupByLabelSampler(Sampler):
    """Batches of whole label groups (see the module docstring).

    Args:
        items_per_label: rows of one label put together (≥ 2; a batch may hold several groups of a label).
        seed: base seed of the shuffles.
        deduplicate: keep a group out of a batch that already holds one of its items.
        min_batch_size: batches smaller than this are dropped.
    """

    def __init__(self, items_per_label: int = 2, seed: int = 0, deduplicate: bool = True, min_batch_size: int = 2):
        if not isinstance(items_per_label, int) or isinstance(items_per_label, bool) or items_per_label < 2:
            raise ConfigError(f"group_by_label: items_per_label must be an int >= 2, got {items_per_label!r}")
        self.items_per_label, self.seed = items_per_label, seed
        self.deduplicate, self.min_batch_size = deduplicate, min_batch_size
        self.key_fns: Dict[str, Callable[[Any], Any]] = {}
        self.stats: Dict[str, int] = {}

    def set_key_functions(self, key_fns):
        self.key_fns = dict(key_fns)

    def _labels(self, rows: Rows) -> List[Any]:
        if rows.streaming:
            raise ConfigError(
                "sampler 'group_by_label' needs the whole label column and cannot read a streamed "
                "dataset; load it, or use the 'in_batch' sampler"
            )
        if not rows.has_label:
            raise ConfigError(f"sampler 'group_by_label' needs a 'label' column; the columns are {rows.columns}")
        return [repr(v) for v in rows.column(LABEL)]

    def _groups(self, labels: List[str], rng: random.Random) -> List[List[int]]:
        by_label: Dict[str, List[int]] = {}
        for i, y in enumerate(labels):
            by_label.setdefault(y, []).append(i)
        groups: List[List[int]] = []
        unpaired = 0
        for y in sorted(by_label):
            idx = by_label[y]
            if len(idx) < 2:
                unpaired += 1
                continue
            rng.shuffle(idx)
            k = self.items_per_label
            cut = [idx[s : s + k] for s in range(0, len(idx), k)]
            if len(cut[-1]) == 1:
                cut[-2].extend(cut.pop())
            groups += cut
        if not groups:
            raise ConfigError(
                f"sampler 'group_by_label': every label of the {len(labels)} rows is unique, so no "
                f"batch can hold two items of a label; give several rows per label"
            )
        self.stats = {"unpaired": unpaired}
        rng.shuffle(groups)
        return groups

    def plan(self, rows: Rows, epoch: int, batch_size: int) -> List[List[int]]:
        labels = self._labels(rows)
        if batch_size < self.items_per_label + 1:
            raise ConfigError(
                f"sampler 'group_by_label' needs batch_size > items_per_label "
                f"({self.items_per_label}), got {batch_size}"
            )
        rng = random.Random(self.seed * 1_000_003 + epoch)
        groups = self._groups(labels, rng)
        cols = [c for c in rows.item_columns if c in self.key_fns] if self.deduplicate else []
        keys = (
            [tuple(ks) for ks in zip(*[[self.key_fns[c](v) for v in rows.column(c)] for c in cols])] if cols else None
        )
        batches: List[List[int]] = []
        pending = groups
        while pending:
            batch: List[int] = []
            seen: set = set()
            rest: List[List[int]] = []
            for n, g in enumerate(pending):
                if batch_size - len(batch) < 2:  # full: the other groups wait, in their order
                    rest += pending[n:]
                    break
                gk = [k for i in g for k in keys[i]] if keys is not None else []
                if len(batch) + len(g) <= batch_size and not any(k in seen for k in gk) and len(set(gk)) == len(gk):
                    batch += g
                    seen.update(gk)
                else:
                    rest.append(g)
            if not batch:  # only groups that fit nowhere (an item twice within the group): dropped
                self.stats["dropped_groups"] = len(rest)
                break
            batches.append(batch)
            pending = rest
        kept = [b for b in batches if len(b) >= self.min_batch_size]
        self.stats["dropped"] = sum(map(len, batches)) - sum(map(len, kept))
        return kept

    def state_dict(self):
        return {"seed": self.seed}

    def load_state_dict(self, state):
        self.seed = state.get("seed", self.seed)

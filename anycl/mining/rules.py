"""Hard-negative mining's rules and record: :func:`filter_candidates` applies the false-negative filters
(rules 2–5 of :mod:`anycl.mining`) to the ranked candidates, :func:`choose_negatives` picks each query's
negatives from the survivors, and :class:`MiningStats` says what one pass did (a pass's options and their
checks: :mod:`anycl.mining.options`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch

RULES = ("range_min", "max_score", "absolute_margin", "relative_margin")


@dataclass
class MiningStats:
    """What one mining pass did (printed by :func:`mine_hard_negatives` when ``verbose``)."""

    queries: int = 0
    corpus_size: int = 0
    num_negatives: int = 0
    candidates: int = 0  # ranks considered: queries × min(range_max, corpus size)
    kept: int = 0  # candidates left after every rule (before taking num_negatives)
    filtered: Dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    own_positives_excluded: int = 0
    negatives_taken: int = 0
    mean_positive_score: float = float("nan")
    mean_negative_score: float = float("nan")
    queries_short: int = 0  # queries left with fewer than num_negatives candidates
    filled_at_random: int = 0  # negatives drawn at random for short queries (on_short="random")
    rows_in: int = 0
    rows_out: int = 0
    rows_dropped: int = 0
    embed_seconds: float = 0.0
    search_seconds: float = 0.0
    backend: str = "exact"  # the search: "exact" or "faiss"
    engine: str = ""  # what embedded (anycl.model.engines: "torch", "torch-bf16", "onnx", "onnx-int8")
    processes: int = 1  # processes the pass was split over (anycl.mining.shard)
    embedded: int = 0  # items this process embedded (its share; without those read from cache_dir)
    cache_hits: int = 0  # items this process read from cache_dir instead of embedding them

    @property
    def queries_per_s(self) -> float:
        total = self.embed_seconds + self.search_seconds
        return self.queries / total if total > 0 else float("nan")

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["queries_per_s"] = self.queries_per_s
        return d

    def __str__(self) -> str:
        f = ", ".join(f"{k} {v}" for k, v in self.filtered.items())
        lines = [
            f"hard-negative mining: {self.queries} queries, corpus of {self.corpus_size} documents",
            f"  candidates {self.candidates}: kept {self.kept}; filtered: {f}; own positives excluded "
            f"{self.own_positives_excluded}",
            f"  negatives taken {self.negatives_taken} ({self.num_negatives} per query); mean positive score "
            f"{self.mean_positive_score:.4f}, mean negative score {self.mean_negative_score:.4f}",
            f"  queries without {self.num_negatives} negatives: {self.queries_short}"
            + (f" (filled {self.filled_at_random} negatives at random)" if self.filled_at_random else "")
            + (f"; rows dropped {self.rows_dropped} of {self.rows_in}" if self.rows_dropped else ""),
            f"  {self.queries_per_s:.1f} queries/s (embedding {self.embed_seconds:.1f}s"
            + (f" with {self.engine}" if self.engine else "")
            + ", search "
            f"{self.search_seconds:.1f}s, {self.backend})",
        ]
        if self.processes > 1 or self.cache_hits:
            lines.append(
                f"  this process embedded {self.embedded} items"
                + (f" of {self.processes} processes' shares" if self.processes > 1 else "")
                + (f"; {self.cache_hits} read from the cache" if self.cache_hits else "")
            )
        return "\n".join(lines)


def filter_candidates(
    scores: torch.Tensor,
    positive_score: torch.Tensor,
    range_min: int = 0,
    max_score: Optional[float] = None,
    absolute_margin: Optional[float] = None,
    relative_margin: Optional[float] = None,
    guide_reject: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, int]]:
    """Which ranked candidates pass the false-negative rules (see the module docstring).

    Args:
        scores: (Q, R) candidate scores sorted descending (``-inf`` = no candidate).
        positive_score: (Q,) each query's lowest positive score.
        guide_reject: optional (Q, R) bool, the guide rule's verdict (applied last, counted as ``guide``).
    Returns:
        (Q, R) bool mask of kept candidates, and per rule the number of candidates it rejected first.
    """
    valid = torch.isfinite(scores)
    alive = valid.clone()
    counts: Dict[str, int] = {}
    ranks = torch.arange(scores.shape[1]).unsqueeze(0)
    rules: List[Tuple[str, Optional[torch.Tensor]]] = [("range_min", ranks < int(range_min))]
    pos = positive_score.unsqueeze(1)
    rules.append(("max_score", scores > max_score if max_score is not None else None))
    rules.append(("absolute_margin", scores > pos - absolute_margin if absolute_margin is not None else None))
    rules.append(
        ("relative_margin", scores > pos - relative_margin * pos.abs() if relative_margin is not None else None)
    )
    if guide_reject is not None:
        rules.append(("guide", guide_reject))
    for name, reject in rules:
        if reject is None:
            counts[name] = 0
            continue
        hit = alive & reject
        counts[name] = int(hit.sum())
        alive &= ~hit
    return alive, counts


def choose_negatives(
    idx: torch.Tensor,
    keep: torch.Tensor,
    own: List[set],
    n_docs: int,
    num_negatives: int,
    sampling: str,
    on_short: str,
    seed: int,
    stats: MiningStats,
) -> List[List[int]]:
    """Each query's negatives (document ids) from its ranked candidates ``idx`` (Q, R) that passed the
    rules (``keep``): the best ``num_negatives`` (``sampling="top"``) or a seeded random draw among them;
    a query left short is filled with random documents that are not its own (``own[q]``) when
    ``on_short="random"``. Counts short queries and random fills in ``stats``."""
    gen = torch.Generator().manual_seed(int(seed))
    chosen: List[List[int]] = []
    for qi in range(idx.shape[0]):
        cand = idx[qi][keep[qi]].tolist()
        if sampling == "random" and len(cand) > num_negatives:
            pick = torch.randperm(len(cand), generator=gen)[:num_negatives].sort().values.tolist()
            cand = [cand[j] for j in pick]
        else:
            cand = cand[:num_negatives]
        if len(cand) < num_negatives:
            stats.queries_short += 1
            if on_short == "random":
                banned = set(cand) | own[qi]
                pool = [j for j in torch.randperm(n_docs, generator=gen).tolist() if j not in banned]
                fill = pool[: num_negatives - len(cand)]
                stats.filled_at_random += len(fill)
                cand = cand + fill
        chosen.append(cand)
    return chosen

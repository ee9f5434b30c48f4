"""Mining split across processes: each process embeds a contiguous shard of the corpus (and of the
queries) and searches its shard; the per-process top-k are all-gathered and merged.

Under ``accelerate launch`` (a ``torch.distributed`` process group of W > 1 processes),
:func:`anycl.mining.mine_negative_ids` uses a :class:`Shard` per list of items: process r embeds items
``[n·r/W, n·(r+1)/W)``. The queries' embeddings are all-gathered (every process searches every query
against its part of the corpus); the corpus embeddings stay where they were computed. Each process's
exact top-k of its shard (global ids: local id + shard start) is all-gathered and merged by (score
descending, lower id first) — the order :func:`anycl.search.exact` uses within one process — so W
processes find exactly the candidates of one process, given the same embeddings. Scores of single
(query, document) pairs (a positive's score, a guide's score of a candidate) are computed by the process
holding the document and summed over processes (the others add 0, so the sum is exact).

Memory: each process holds all query embeddings, its shard of the corpus embeddings, and the search's
blocks; the gathered top-k are merged per block of queries (W × block × k values), never all at once.
With one process everything here runs as the plain one-process path (no communication).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from anycl.distributed import process_info
from anycl.search.exact import candidates
from anycl.search.rescore import canonical_topk, indexed_pair_dots, merge_ranked, rounding_bound, settle, slack

SearchFn = Callable[..., Tuple[torch.Tensor, torch.Tensor]]
GATHER_BLOCK = 16384  # queries whose per-process top-k are gathered and merged at a time


def _comm_device() -> torch.device:
    """Where collectives run: the current GPU under NCCL (it moves no CPU tensors), else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather(x: torch.Tensor) -> List[torch.Tensor]:
    """Every process's ``x`` (any shape, same number of dims), in rank order, on the CPU."""
    _, world = process_info()
    dev = _comm_device()
    shape = torch.tensor(list(x.shape), dtype=torch.long, device=dev)
    shapes = [torch.zeros_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    dims = [s.tolist() for s in shapes]
    big = [max(d[j] for d in dims) for j in range(x.dim())]
    padded = x.new_zeros(big)
    padded[tuple(slice(0, n) for n in x.shape)] = x
    parts = [torch.empty_like(padded, device=dev) for _ in range(world)]
    dist.all_gather(parts, padded.to(dev).contiguous())
    return [p[tuple(slice(0, n) for n in d)].cpu() for p, d in zip(parts, dims)]


def _sum(x: torch.Tensor) -> torch.Tensor:
    _, world = process_info()
    if world == 1:
        return x
    y = x.to(_comm_device()).contiguous()
    dist.all_reduce(y)
    return y.cpu()


class Shard:
    """This process's contiguous part ``[start, stop)`` of ``n`` items split over the process group
    (``rank``/``world`` default to the running group's; one process: everything)."""

    def __init__(self, n: int, rank: Optional[int] = None, world: Optional[int] = None):
        if rank is None or world is None:
            rank, world = process_info()
        self.n, self.rank, self.world = n, rank, world
        self.start, self.stop = n * rank // world, n * (rank + 1) // world

    def __len__(self) -> int:
        return self.stop - self.start

    def take(self, items: Sequence) -> list:
        return list(items[self.start : self.stop])

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The (n, D) rows of every process's shard, in order, from this process's (len, D) rows (an
        empty shard may pass a (0, 0) tensor)."""
        if self.world == 1:
            return local
        parts = _all_gather(local)
        width = max(p.shape[1] for p in parts)
        return torch.cat([p if p.shape[1] == width else p.new_zeros(p.shape[0], width) for p in parts])

    def pair_scores(
        self, q_emb: torch.Tensor, d_local: torch.Tensor, qi: torch.Tensor, di: torch.Tensor
    ) -> torch.Tensor:
        """:func:`~anycl.search.rescore.pair_dots` of the pairs (query ``qi[j]``, corpus item ``di[j]``)
        (global ids; ``d_local`` holds this shard's rows), the same in every process."""
        mine = (di >= self.start) & (di < self.stop)
        out = torch.zeros(qi.shape[0])
        if bool(mine.any()):
            out[mine] = indexed_pair_dots(q_emb, d_local, qi[mine], di[mine] - self.start)
        return _sum(out)

    def _local(self, exclude: Optional[Sequence[Sequence[int]]]) -> Optional[List[List[int]]]:
        return (
            None if exclude is None else [[c - self.start for c in e if self.start <= c < self.stop] for e in exclude]
        )

    def _merged(self, s: torch.Tensor, i: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """This shard's (Q, ·) results with global ids, merged with every other process's."""
        i = torch.where(i >= 0, i + self.start, i)
        if self.world > 1:
            s, i = merge_ranked(torch.cat(_all_gather(s), dim=1), torch.cat(_all_gather(i), dim=1), k)
            i = torch.where(torch.isinf(s), torch.full_like(i, -1), i)
        return s, i

    def topk(
        self,
        q_emb: torch.Tensor,
        d_local: torch.Tensor,
        k: int,
        exclude: Optional[Sequence[Sequence[int]]] = None,
        chunk_size: int = 1024,
        search: SearchFn = candidates,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each query's top-``k`` over the whole corpus (global ids, ``-1``/``-inf`` for missing ranks;
        ``exclude``: global ids per query), equal to :func:`anycl.search.exact` on one process.
        ``search(queries, corpus, depth, exclude, chunk_size)``: the candidate search run on this
        process's shard (:func:`anycl.search.exact.candidates`, or the FAISS backend's); one whose attribute
        ``exhaustive`` is False (approximate) gets no exhaustive fallback (:mod:`anycl.search.rescore`)."""
        nq = q_emb.shape[0]
        k = max(0, int(k))
        depth = k + slack(k)
        d_max = d_local.norm(dim=1).max() if d_local.numel() else torch.zeros(())
        if self.world > 1:
            d_max = max(float(t) for t in _all_gather(d_max.reshape(1)))
        exhaustive = getattr(search, "exhaustive", True)
        block = chunk_size * max(1, GATHER_BLOCK // chunk_size)
        out_s, out_i = [], []
        for qs in range(0, max(nq, 1), block):
            q = q_emb[qs : qs + block]
            ex = None if exclude is None else exclude[qs : qs + q.shape[0]]
            if len(self):
                cs, ci = search(q, d_local, depth, self._local(ex), chunk_size)
            else:
                cs, ci = (
                    torch.full((q.shape[0], depth), float("-inf")),
                    torch.full((q.shape[0], depth), -1, dtype=torch.long),
                )
            cs, ci = self._merged(cs, ci, depth)

            def fallback(rows: torch.Tensor, q=q, ex=ex) -> Tuple[torch.Tensor, torch.Tensor]:
                rex = None if ex is None else [ex[r] for r in rows.tolist()]
                fs, fi = canonical_topk(q[rows], d_local, k, self._local(rex))
                return self._merged(fs, fi, k)

            s, i = settle(
                cs,
                ci,
                k,
                partial(self.pair_scores, q, d_local),
                rounding_bound(q.shape[1] if q.dim() == 2 else 0, q.norm(dim=1), float(d_max)),
                fallback if exhaustive else None,
            )
            out_s.append(s)
            out_i.append(i)
        return torch.cat(out_s)[:nq], torch.cat(out_i)[:nq]


def lowest_pair_scores(
    shard_d: Shard, q_emb: torch.Tensor, d_local: torch.Tensor, per_query: List[List[int]]
) -> torch.Tensor:
    """(Q,) each query's lowest score among its documents ``per_query[q]`` (global ids; +inf for none)."""
    qi = torch.tensor([q for q, ds in enumerate(per_query) for _ in ds], dtype=torch.long)
    di = torch.tensor([d for ds in per_query for d in ds], dtype=torch.long)
    scores = shard_d.pair_scores(q_emb, d_local, qi, di)
    return torch.full((len(per_query),), float("inf")).scatter_reduce(0, qi, scores, "amin")

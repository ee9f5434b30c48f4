"""The optional FAISS backend of hard-negative mining (``backend="faiss"``): ``pip install 'anycl[faiss]'``.

:func:`faiss_topk` has the interface of :func:`anycl.search.exact` (inner products, per-query exclusions,
``-inf``/``-1`` for missing ranks, equal scores ranked by the lower id) over a FAISS index built on the
corpus:

- ``index="flat"`` (``IndexFlatIP``): exhaustive, the same neighbours as the exact search (useful to
  check the backend; FAISS's own kernels, so scores may differ from torch's in the last bits);
- ``index="ivf"`` (``IndexIVFFlat``): the corpus is clustered into ``nlist`` lists (default
  ``sqrt(N)``, trained by k-means on at most ``TRAIN_PER_LIST`` × nlist documents drawn with a fixed
  seed) and each query scans the ``nprobe`` nearest lists (default 16): approximate, much faster on
  large corpora. :func:`faiss_recall` measures its recall@k against the exact search.

Exclusions (a query's own positives) are dropped from a search as deep as ``k`` plus the query's
exclusions, so they use up no ranks, as in the exact search.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch

from anycl.errors import ConfigError

from .exact import candidates, exclusions, fallback_rows, pair_rows, recall_at_k, topk
from .rescore import merge_ranked, rounding_bound, settle, slack

INDEXES = ("flat", "ivf")
DEFAULTS: Dict[str, Any] = {"index": "flat", "nlist": None, "nprobe": 16}
TRAIN_PER_LIST = 64  # documents per list the IVF k-means trains on, at most


def import_faiss():
    """The ``faiss`` module, or a ConfigError saying how to install it."""
    try:
        import faiss  # lazy: an optional extra
    except ImportError as e:
        raise ConfigError(
            "backend='faiss' needs the faiss package: pip install 'anycl[faiss]' (or pip install faiss-cpu); "
            "backend='exact' (the default) needs nothing"
        ) from e
    return faiss


def check_faiss_options(options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``faiss_options`` with defaults filled in; a ConfigError for an unknown key or a bad value."""
    opts = dict(DEFAULTS)
    if options is None:
        return opts
    if not isinstance(options, Mapping):
        raise ConfigError(f"faiss_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown faiss_options {unknown}; known: {sorted(DEFAULTS)}")
    opts.update(options)
    if opts["index"] not in INDEXES:
        raise ConfigError(f"faiss_options index must be one of {INDEXES}, got {opts['index']!r}")
    for name in ("nlist", "nprobe"):
        v = opts[name]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(
                f"faiss_options {name} must be an int >= 1{' or None' if name == 'nlist' else ''}, got {v!r}"
            )
    return opts


def build_index(corpus: torch.Tensor, index: str = "flat", nlist: Optional[int] = None, nprobe: int = 16):
    """A FAISS inner-product index holding ``corpus`` (N, D)."""
    faiss = import_faiss()
    x = corpus.detach().float().cpu().contiguous().numpy()
    n, d = x.shape
    if index == "flat":
        idx = faiss.IndexFlatIP(d)
    else:
        lists = min(nlist or max(1, round(math.sqrt(n))), max(n, 1))
        quantizer = faiss.IndexFlatIP(d)
        idx = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
        train = x
        if n > TRAIN_PER_LIST * lists:  # k-means on a seeded sample: the cost of training stays bounded
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: TRAIN_PER_LIST * lists]
            train = x[pick.sort().values.numpy()]
        idx.train(train)
        idx.nprobe = min(nprobe, lists)
    idx.add(x)
    return idx


def faiss_candidates(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    depth: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    chunk_size: int = 1024,
    index: str = "flat",
    nlist: Optional[int] = None,
    nprobe: int = 16,
    built: Any = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each query's best ``depth`` documents by a FAISS index (FAISS's scores, sorted descending;
    ``-inf``/``-1`` for missing ranks): the candidate step of :func:`faiss_topk`. ``built``: the index of
    ``corpus`` already built by :func:`build_index` with these options (None: built here)."""
    nq, n = queries.shape[0], corpus.shape[0]
    out_s = torch.full((nq, depth), float("-inf"))
    out_i = torch.full((nq, depth), -1, dtype=torch.long)
    if depth == 0 or n == 0 or nq == 0:
        return out_s, out_i
    idx = built if built is not None else build_index(corpus, index, nlist, nprobe)
    q_all = queries.detach().float().cpu().contiguous().numpy()
    for qs in range(0, nq, chunk_size):
        m = min(chunk_size, nq - qs)
        ex_r, ex_c = exclusions(exclude, qs, m)
        most = int(torch.bincount(ex_r).max()) if len(ex_r) else 0
        scores, ids = idx.search(q_all[qs : qs + m], min(n, depth + most))
        s, i = torch.from_numpy(scores).float(), torch.from_numpy(ids).long()
        drop = (i < 0).int()
        if len(ex_r):  # an excluded id among a query's results: dropped
            drop.index_add_(0, ex_r, (i[ex_r] == ex_c.unsqueeze(1)).int())
        s = s.masked_fill(drop > 0, float("-inf"))
        s, i = merge_ranked(s, torch.where(drop > 0, torch.full_like(i, -1), i), depth)
        i = torch.where(torch.isinf(s), torch.full_like(i, -1), i)
        out_s[qs : qs + m, : s.shape[1]] = s
        out_i[qs : qs + m, : s.shape[1]] = i
    return out_s, out_i


def faiss_topk(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    chunk_size: int = 1024,
    index: str = "flat",
    nlist: Optional[int] = None,
    nprobe: int = 16,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` scores and corpus indices of each query through a FAISS index (see the module docstring);
    the same return values as :func:`anycl.search.exact`, and with ``index="flat"`` the same results
    (candidates rescored and settled as in :mod:`anycl.search.rescore`). ``chunk_size``: queries per call."""
    k = max(0, int(k))
    cand_s, cand_i = faiss_candidates(queries, corpus, k + slack(k), exclude, chunk_size, index, nlist, nprobe)
    if corpus.shape[0] == 0:
        return cand_s[:, :k], cand_i[:, :k]
    d_max = float(corpus.norm(dim=1).max())
    return settle(
        cand_s,
        cand_i,
        k,
        partial(pair_rows, queries, corpus),
        rounding_bound(queries.shape[1], queries.norm(dim=1), d_max),
        partial(fallback_rows, queries, corpus, k, exclude) if index == "flat" else None,
    )


def searcher(backend: str, faiss_options: Optional[Mapping[str, Any]] = None):
    """The candidate search of a mining backend: ``(queries, corpus, depth, exclude, chunk_size) ->
    (scores, ids)``, with ``exhaustive`` False for an approximate index (:mod:`anycl.mining.shard`)."""
    if backend == "exact":
        return candidates
    if backend != "faiss":
        raise ConfigError(f"backend must be 'exact' or 'faiss', got {backend!r}")
    opts = check_faiss_options(faiss_options)
    import_faiss()  # the error before any embedding, not after

    last: Dict[str, Any] = {}  # the corpus last searched and its index: built once, not per block of queries

    def search(queries, corpus, depth, exclude=None, chunk_size=1024):
        if last.get("corpus") is not corpus:
            last.clear()
            last["corpus"] = corpus
        if last.get("index") is None and depth and corpus.shape[0] and queries.shape[0]:
            last["index"] = build_index(corpus, **opts)
        return faiss_candidates(queries, corpus, depth, exclude, chunk_size, **opts, built=last.get("index"))

    search.exhaustive = opts["index"] == "flat"  # type: ignore[attr-defined]
    return search


def faiss_recall(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    chunk_size: int = 1024,
    **faiss_options,
) -> float:
    """Recall@k of the FAISS search (``faiss_options``: ``index``, ``nlist``, ``nprobe``) against the exact
    search of the same embeddings: the mean share of each query's exact top-k that FAISS finds too."""
    opts = check_faiss_options(faiss_options)
    _, exact = topk(queries, corpus, k, exclude, chunk_size)
    _, found = faiss_topk(queries, corpus, k, exclude, chunk_size, **opts)
    return recall_at_k(exact, found, k)

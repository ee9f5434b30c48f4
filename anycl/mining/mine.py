"""Hard-negative mining: exact top-k by chunked matrix products, with false-negative filters.

:func:`mine_hard_negatives` embeds the distinct queries (anchors) and a corpus (by default every
distinct positive; with ``corpus=`` your documents plus the positives), finds each query's nearest
documents and keeps ``num_negatives`` of them per query. The search runs over blocks of
``chunk_size`` queries × ``chunk_size`` documents and merges a running top-k, so memory is the
embeddings plus ``chunk_size × (chunk_size + range_max)`` scores — never a query × corpus matrix.

Candidates go through these rules, in this order; each rejected candidate is counted under the first
rule that rejects it:

1. **own positive**: a query's own positive(s) and a document equal to the query itself are never
   candidates (they are masked before the top-k, so they do not use up ranks);
2. **range_min**: the ``range_min`` best remaining candidates are skipped (likely unlabelled positives);
   only the best ``range_max`` are considered at all;
3. **max_score**: a candidate scoring above ``max_score`` is dropped;
4. **absolute_margin**: dropped unless ``score <= positive_score - absolute_margin``;
5. **relative_margin**: dropped unless ``score <= positive_score - relative_margin * |positive_score|``
   (the same as ``score <= positive_score * (1 - relative_margin)`` for a positive score, and still a
   *stricter* bound for a negative score, where multiplying would loosen it);
6. **guide** (only with ``guide=``, a second model): dropped when the *guide's* score of the candidate
   exceeds the guide's positive score minus ``guide_margin`` (``guide_margin_strategy="absolute"``) or
   minus ``guide_margin * |guide positive score|`` (``"relative"``) — GISTEmbed's false-negative rule
   applied at mining time, with the candidates still ranked by the mined model.

``positive_score`` is the query's **lowest** positive score when it has several positives, so a
candidate must be clearly below every positive. From the candidates left, ``sampling="top"`` takes the
best ``num_negatives`` and ``sampling="random"`` draws them at random (seeded) from the window.

Scores are cosine similarities of the model's embeddings.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from anycl.data.inputs import to_rows
from anycl.distributed import process_info
from anycl.errors import DataError
from anycl.model.embed import model_engine
from anycl.progress import phase_bar
from anycl.search.faiss_index import searcher

from . import st_call
from .embed_cache import EmbeddingCache, check_cacheable, embed_items
from .guide_filter import guide_rejects
from .options import MiningOptions
from .pairs import MiningPairs, check_corpus_size, check_items, distinct_pairs
from .rules import RULES, MiningStats, choose_negatives, filter_candidates  # noqa: F401
from .shard import Shard, lowest_pair_scores

log = logging.getLogger("anycl")


def mine_negative_ids(
    model,
    anchors: Sequence[Any],
    positives: Sequence[Any],
    corpus: Optional[Sequence[Any]] = None,
    *,
    options: Optional[MiningOptions] = None,
    guide=None,
    guide_cache: Optional[dict] = None,
    **option_values: Any,
):
    """The mining pass on parallel lists of anchors and positives.

    The options: ``options=`` a :class:`~anycl.mining.options.MiningOptions`, and/or any of its fields by
    keyword (``num_negatives=2, range_max=50``; a keyword overrides the record's value); see
    :func:`mine_hard_negatives`. They are checked before anything is embedded.

    Under several processes (``torch.distributed`` initialised) every process must call it with the same
    arguments: each embeds and searches its shard (:mod:`anycl.mining.shard`) and all return the same.
    The option ``shard=False``: this process mines everything alone (no communication; for a call made in
    one process only).

    ``guide``: a second model (anything ``model`` may be) whose scores drop false negatives (rule 6 of
    the module docstring). ``guide_cache``: a dict kept by the caller between passes over the same rows
    and corpus; a frozen guide's embeddings are then computed once, not at every re-mining.

    Returns ``(per_row, documents, stats)``: for row r, ``per_row[r]`` is a list of indices into
    ``documents`` (the deduplicated corpus), ``num_negatives`` long, or ``None`` for a row dropped
    with ``on_short="drop"``.
    """
    opts = MiningOptions.resolve(options, **option_values)
    search = searcher(opts.backend, opts.faiss_options)  # the search of this pass (its options were checked above)
    check_models(opts, model, guide)
    documents = list(corpus) if corpus is not None else []
    check_items(model, anchors, positives, documents)
    pairs = distinct_pairs(anchors, positives, documents)
    check_corpus_size(pairs, opts.num_negatives)
    stats = MiningStats(
        num_negatives=opts.num_negatives,
        rows_in=len(anchors),
        backend=opts.backend,
        queries=len(pairs.queries),
        corpus_size=len(pairs.docs),
        own_positives_excluded=pairs.excluded,
    )
    shards = process_shards(pairs, opts.shard)
    cache = EmbeddingCache(opts.cache_dir, opts.cache_keep) if opts.cache_dir is not None else None
    q_emb, d_emb = embed_pairs(model, pairs, shards, opts, cache, stats)
    started = time.perf_counter()
    scores, idx, pos_score = search_candidates(q_emb, d_emb, pairs, shards[1], opts, search)
    reject = guide_rejections(guide, pairs, idx, shards, opts, guide_cache, cache, stats)
    finish_cache(cache, stats)
    chosen = pick_negatives(scores, idx, pos_score, reject, pairs, opts, stats)
    stats.search_seconds = time.perf_counter() - started
    per_row = negatives_per_row(chosen, pairs.row_query, opts, stats)
    score_statistics(q_emb, d_emb, chosen, pos_score, shards[1], stats)
    return per_row, pairs.docs, stats


# -- the steps of a mining pass, in order --------------------------------------------------------------
def check_models(opts: MiningOptions, model, guide) -> None:
    """With ``cache_dir``: the model (and guide) must have a state to hash; checked in every process, before
    any embedding (or collective)."""
    if opts.cache_dir is not None:
        for m in (model, guide) if guide is not None else (model,):
            check_cacheable(m)


def process_shards(pairs: MiningPairs, shard: bool) -> Tuple[Shard, Shard]:
    """This process's share of the queries and of the documents (all of both with ``shard=False``)."""
    if shard:
        return Shard(len(pairs.queries)), Shard(len(pairs.docs))
    return Shard(len(pairs.queries), 0, 1), Shard(len(pairs.docs), 0, 1)


def embed_pairs(
    model, pairs: MiningPairs, shards: Tuple[Shard, Shard], opts: MiningOptions, cache, stats: MiningStats
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every query's embedding (each process embeds its share; gathered) and this process's share of the
    documents' embeddings, under one progress bar (the main process's)."""
    shard_q, shard_d = shards
    engine = model_engine(model, opts.embed_engine)  # "auto" settled, an ONNX engine checked: before any embedding
    t0 = time.perf_counter()
    show = opts.show_progress if process_info()[0] == 0 else False
    with phase_bar(show, len(shard_q) + len(shard_d), desc="mining (embed)") as bar:
        q_emb = shard_q.gather(
            embed_items(model, shard_q.take(pairs.queries), "anchor", opts.batch_size, engine, bar, cache)
        )
        d_emb = embed_items(model, shard_d.take(pairs.docs), "positive", opts.batch_size, engine, bar, cache)
    stats.embed_seconds = time.perf_counter() - t0
    stats.engine = engine
    stats.processes, stats.embedded = shard_q.world, len(shard_q) + len(shard_d)
    return q_emb, d_emb


def search_candidates(
    q_emb: torch.Tensor, d_emb: torch.Tensor, pairs: MiningPairs, shard_d: Shard, opts: MiningOptions, search
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores, document ids) of each query's best ``range_max`` documents, its own excluded (rule 1), and
    each query's lowest positive score."""
    own = [sorted(s) for s in pairs.own]
    pos_score = lowest_pair_scores(shard_d, q_emb, d_emb, pairs.labelled)
    depth = min(opts.range_max, len(pairs.docs))
    scores, idx = shard_d.topk(q_emb, d_emb, depth, own, opts.chunk_size, search)
    return scores, idx, pos_score


def guide_rejections(
    guide, pairs: MiningPairs, idx, shards, opts: MiningOptions, guide_cache, cache, stats: MiningStats
) -> Optional[torch.Tensor]:
    """The candidates the guide rejects (rule 6; None without a guide)."""
    if guide is None:
        return None
    return guide_rejects(
        guide,
        pairs.queries,
        pairs.docs,
        pairs.labelled,
        idx,
        opts.guide_margin,
        opts.guide_margin_strategy,
        opts.batch_size,
        opts.embed_engine,
        guide_cache,
        stats,
        shards=shards,
        embed_cache=cache,
    )


def finish_cache(cache: Optional[EmbeddingCache], stats: MiningStats) -> None:
    """The cache's counts into the statistics; the main process prunes the folder to ``cache_keep`` keys."""
    if cache is None:
        return
    stats.embedded, stats.cache_hits = cache.misses, cache.hits
    if process_info()[0] == 0:
        cache.finish()


def pick_negatives(
    scores, idx, pos_score, reject, pairs: MiningPairs, opts: MiningOptions, stats: MiningStats
) -> List[List[int]]:
    """Each query's negatives: the candidates through rules 2-6, then ``num_negatives`` of those left."""
    keep, counts = filter_candidates(
        scores, pos_score, opts.range_min, opts.max_score, opts.absolute_margin, opts.relative_margin, reject
    )
    stats.candidates = int(torch.isfinite(scores).sum())
    stats.filtered, stats.kept = counts, int(keep.sum())
    return choose_negatives(
        idx, keep, pairs.own, len(pairs.docs), opts.num_negatives, opts.sampling, opts.on_short, opts.seed, stats
    )


def negatives_per_row(
    chosen: List[List[int]], row_query: List[int], opts: MiningOptions, stats: MiningStats
) -> List[Optional[List[int]]]:
    """Each row's negatives (its query's); None for a row whose query is short with ``on_short="drop"``."""
    per_row: List[Optional[List[int]]] = []
    for q in row_query:
        c = chosen[q]
        if len(c) < opts.num_negatives and opts.on_short == "drop":
            per_row.append(None)
            stats.rows_dropped += 1
            continue
        per_row.append(c)
    stats.rows_out = len(row_query) - stats.rows_dropped
    return per_row


def score_statistics(q_emb, d_emb, chosen: List[List[int]], pos_score, shard_d: Shard, stats: MiningStats) -> None:
    """The negatives taken and the mean positive and negative scores."""
    pairs_q = torch.tensor([qi for qi, c in enumerate(chosen) for _ in c], dtype=torch.long)
    pairs_d = torch.tensor([d for c in chosen for d in c], dtype=torch.long)
    neg = shard_d.pair_scores(q_emb, d_emb, pairs_q, pairs_d)
    stats.negatives_taken = sum(len(c) for c in chosen)
    stats.mean_positive_score = float(pos_score.mean()) if len(pos_score) else float("nan")
    stats.mean_negative_score = float(neg.mean()) if len(neg) else float("nan")


def mine_hard_negatives(
    model,
    rows_or_pairs,
    *args: Any,
    corpus: Optional[Sequence[Any]] = None,
    options: Optional[MiningOptions] = None,
    columns: Optional[Dict[str, str]] = None,
    verbose: bool = True,
    guide=None,
    **option_values: Any,
) -> Any:
    """Mine hard negatives for (anchor, positive) pairs with a model.

    Args:
        model: an anycl :class:`~anycl.model.ContrastiveModel` (anchors embedded with the anchor
            tower, documents with the positive tower), a ``SentenceTransformer``, or a callable
            ``items -> (N, D)`` embeddings.
        rows_or_pairs: anything :func:`anycl.data.to_rows` takes with ``anchor`` and ``positive``
            columns (a list of dicts or of (anchor, positive) tuples, an HF dataset, a DataFrame …).
            Several rows with the same anchor are one query with several positives. Existing
            ``negative*`` columns are ignored (replaced).
        corpus: documents to mine from (default: every distinct positive); the positives are added.
        options: a :class:`~anycl.mining.options.MiningOptions` (default: its defaults).
        **option_values: any :class:`~anycl.mining.options.MiningOptions` field by keyword (each one's
            meaning and default are documented there): ``num_negatives``, ``range_min``, ``range_max``,
            ``max_score``, ``absolute_margin``, ``relative_margin``, ``sampling``, ``batch_size``,
            ``chunk_size``, ``seed``, ``on_short``, ``engine``, ``precision``, ``show_progress``, ``guide_margin``,
            ``guide_margin_strategy``, ``backend``, ``faiss_options``, ``cache_dir``, ``cache_keep``,
            ``shard``. Given with ``options=``, a keyword overrides that option. A bad or unknown option
            is a :class:`~anycl.errors.ConfigError` naming it, raised before anything is embedded.
        columns: map the convention's names to yours, e.g. ``{"anchor": "query", "positive": "doc"}``.
        verbose: print the statistics.
        guide: a second model (anything ``model`` may be) whose scores drop false negatives: a candidate
            the guide rates above the guide's positive score minus ``guide_margin`` is rejected (rule 6
            above; counted as ``guide`` in the statistics).

    Under ``accelerate launch`` (several processes) call it in every process with the same arguments:
    each process embeds and searches its share of the queries and corpus, the top-k are merged across
    processes (the same negatives as one process), and the statistics are printed by the main process.
    A call made in one process only (``if accelerator.is_main_process:``) must pass ``shard=False``
    (that process then mines everything alone); otherwise it waits for the others forever.

    sentence-transformers' call is read too (:mod:`anycl.mining.st_call`): ``mine_hard_negatives(dataset, model,
    ...)`` (the data first) with its argument names, positional order, defaults and ``output_format`` returns what
    it returns (a ``datasets.Dataset`` when given one); its argument names in anycl's order give ``(rows, stats)``.

    Returns:
        ``(rows, stats)``: rows as dicts ``{"anchor", "positive", "negative_1", …}`` in input order
        (minus dropped rows), and a :class:`MiningStats`.
    """
    if st_call.is_st_call(model, rows_or_pairs, option_values):  # it calls this function back in anycl's order
        return st_call.mine_as_st(
            mine_hard_negatives,
            model,
            rows_or_pairs,
            *args,
            corpus=corpus,
            options=options,
            columns=columns,
            verbose=verbose,
            guide=guide,
            **option_values,
        )
    if len(args) > 1 or (args and corpus is not None):
        raise TypeError("mine_hard_negatives(model, data, corpus=None, *, ...): give the options by name")
    corpus = args[0] if args else corpus
    opts = MiningOptions.resolve(options, **option_values)
    if isinstance(rows_or_pairs, (list, tuple)) and rows_or_pairs and isinstance(rows_or_pairs[0], (list, tuple)):
        rows_or_pairs = [{"anchor": r[0], "positive": r[1] if len(r) > 1 else None} for r in rows_or_pairs]
    rows = to_rows(rows_or_pairs, columns)
    if rows.streaming:
        raise DataError("mining needs a dataset with a length (not a stream); materialise it first")
    if "positive" not in rows.columns:
        raise DataError(f"mining needs (anchor, positive) pairs; the data's columns are {rows.columns}")
    anchors, positives = rows.column("anchor"), rows.column("positive")
    per_row, docs, stats = mine_negative_ids(model, anchors, positives, corpus, options=opts, guide=guide)
    out = []
    for a, p, negs in zip(anchors, positives, per_row):
        if negs is None:
            continue
        row = {"anchor": a, "positive": p}
        for j, d in enumerate(negs):
            row[f"negative_{j + 1}"] = docs[d]
        out.append(row)
    if verbose and process_info()[0] == 0:  # printed (by the main process), or logged: not both
        print(stats)
    else:
        log.info("%s", stats)
    return out, stats

"""The rows of a mining pass as a search problem: every item checked, the distinct queries (anchors) and the
rows that ask them, the distinct documents (the corpus given, then every positive) and, per query, the
documents that are never its negatives (its own positives, and a document equal to the query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Set

from anycl.errors import DataError
from anycl.keys import item_key
from anycl.model.embed import is_anycl_model


@dataclass
class MiningPairs:
    """Parallel anchors and positives (and a corpus), de-duplicated by :func:`anycl.keys.item_key`."""

    queries: List[Any]  # the distinct anchors, in the order first seen
    row_query: List[int]  # row r asks queries[row_query[r]]
    docs: List[Any]  # the distinct documents: the corpus given, then the positives not in it
    own: List[Set[int]]  # per query: its positives and a document equal to it (never its candidates)
    labelled: List[List[int]]  # per query: its rows' positives, one entry per row (the positive score)

    @property
    def excluded(self) -> int:
        """Documents excluded as a query's own, over all queries."""
        return sum(len(s) for s in self.own)


def item_validator(model, side: str):
    """The check of one ``side`` item: the model's adapter's ``validate``, or (a plain embedding model) a
    non-empty string."""
    if is_anycl_model(model):
        return model.tower(side).adapter.validate

    def check(item, where):
        if not isinstance(item, str):
            raise DataError(f"{where} must be a string, got {type(item).__name__}: {item!r:.80}")
        if not item.strip():
            raise DataError(f"{where} is an empty string; remove empty texts or fill them in")

    return check


def check_items(model, anchors: Sequence[Any], positives: Sequence[Any], corpus: Sequence[Any]) -> None:
    """Every anchor, positive and corpus document through ``model``'s check of its side: a
    :class:`~anycl.errors.DataError` naming the row (or ``corpus[j]``), raised before anything is embedded."""
    check_anchor, check_document = item_validator(model, "anchor"), item_validator(model, "positive")
    for r, (a, p) in enumerate(zip(anchors, positives)):
        check_anchor(a, f"row {r}: anchor")
        if p is None:
            raise DataError(
                f"row {r}: the query {a!r:.60} has no positive; mining needs (anchor, positive) pairs "
                f"(drop rows without a positive)"
            )
        check_document(p, f"row {r}: positive")
    for j, d in enumerate(corpus):
        check_document(d, f"corpus[{j}]")


def _distinct(items: Sequence[Any], index: Dict[Any, int], out: List[Any]) -> List[int]:
    """Each item's position in ``out``, the distinct items by key (``index``: key → position); an item not
    seen before is appended."""
    ids = []
    for x in items:
        k = item_key(x)
        if k not in index:
            index[k] = len(out)
            out.append(x)
        ids.append(index[k])
    return ids


def distinct_pairs(anchors: Sequence[Any], positives: Sequence[Any], corpus: Sequence[Any]) -> MiningPairs:
    """The distinct queries and documents of parallel ``anchors`` and ``positives`` plus ``corpus``."""
    queries: List[Any] = []
    row_query = _distinct(anchors, {}, queries)
    doc_index: Dict[Any, int] = {}
    docs: List[Any] = []
    _distinct(corpus, doc_index, docs)
    row_doc = _distinct(positives, doc_index, docs)
    own: List[Set[int]] = [set() for _ in queries]
    labelled: List[List[int]] = [[] for _ in queries]
    for q, d in zip(row_query, row_doc):
        own[q].add(d)
        labelled[q].append(d)
    for qi, q in enumerate(queries):  # a document equal to the query is no negative of it
        same = doc_index.get(item_key(q))
        if same is not None:
            own[qi].add(same)
    return MiningPairs(queries, row_query, docs, own, labelled)


def check_corpus_size(pairs: MiningPairs, num_negatives: int) -> None:
    if len(pairs.docs) <= num_negatives:
        raise DataError(
            f"the corpus has {len(pairs.docs)} distinct documents (positives included); num_negatives="
            f"{num_negatives} needs more than that: give a larger corpus= or lower num_negatives"
        )

"""sentence-transformers' call of :func:`~anycl.mining.mine.mine_hard_negatives`: ``mine_hard_negatives(dataset,
model, ...)`` with its argument names, defaults and output formats.

The order is told apart by what is callable: a model is (an anycl model, a ``SentenceTransformer``, a function of
items), a data set is not; so ``mine_hard_negatives(dataset, model)`` is sentence-transformers' order and
``mine_hard_negatives(model, dataset)`` anycl's. In sentence-transformers' order the defaults are its own
(``num_negatives=3``, ``output_format="triplet"``, the data set's first two columns as anchor and positive) and a
``datasets.Dataset`` given comes back as a ``datasets.Dataset`` with the data set's column names, as
sentence-transformers returns it; the statistics are printed (``verbose``). In anycl's order
sentence-transformers' option names are read too, and the result stays ``(rows, stats)``.

:data:`ST_MINING_ARGS` is the one table of sentence-transformers' argument names: each is read as an anycl
option, or refused with the reason.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

from anycl.data.inputs import to_rows
from anycl.errors import ConfigError

log = logging.getLogger("anycl")
OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
ST_DEFAULTS = {"num_negatives": 3}  # sentence-transformers' own defaults, used in its call order


class MiningArg(NamedTuple):
    """``option``: the anycl mining option it is (None: handled here or refused); ``note``: how (or why not)."""

    option: Optional[str]
    note: str
    convert: Optional[Callable[[Any], Any]] = None


def _use_faiss(v: Any) -> Any:
    return "faiss" if v else "exact"


def _only_false(name: str, why: str) -> MiningArg:
    return MiningArg(None, f"refused unless False: {why}")


ST_MINING_ARGS: Dict[str, MiningArg] = {
    "anchor_column_name": MiningArg(None, "the anchor column (default: the data set's first)"),
    "positive_column_name": MiningArg(None, "the positive column (default: the data set's second)"),
    "range_min": MiningArg("range_min", "the same"),
    "range_max": MiningArg("range_max", "the same (anycl's default 100; sentence-transformers' None: all)"),
    "max_score": MiningArg("max_score", "the same"),
    "absolute_margin": MiningArg("absolute_margin", "the same"),
    "relative_margin": MiningArg("relative_margin", "the same"),
    "margin": MiningArg("absolute_margin", "sentence-transformers' deprecated name of absolute_margin"),
    "num_negatives": MiningArg("num_negatives", "the same (sentence-transformers' order: default 3)"),
    "sampling_strategy": MiningArg("sampling", "'top' or 'random'"),
    "batch_size": MiningArg("batch_size", "the same"),
    "use_faiss": MiningArg("backend", "True → backend='faiss'", _use_faiss),
    "cache_folder": MiningArg("cache_dir", "anycl caches the embeddings there"),
    "verbose": MiningArg(None, "print the statistics"),
    "query_prompt": MiningArg(None, "put before each anchor while embedding (not in the output)"),
    "corpus_prompt": MiningArg(None, "put before each document while embedding (not in the output)"),
    "query_prompt_name": MiningArg(None, "the model's prompt of that name (model.prompts), as query_prompt"),
    "corpus_prompt_name": MiningArg(None, "the model's prompt of that name (model.prompts), as corpus_prompt"),
    "output_format": MiningArg(
        None, "'triplet', 'n-tuple', 'labeled-pair' or 'labeled-list', as sentence-transformers"
    ),
    "as_triplets": MiningArg(None, "deprecated: True → output_format='triplet', False → 'n-tuple'"),
    "faiss_batch_size": MiningArg(None, "ignored: anycl's search runs in blocks of chunk_size"),
    "min_score": MiningArg(
        None, "refused: anycl has no floor on a negative's score; bound the window with range_min / range_max"
    ),
    "cross_encoder": MiningArg(
        None,
        "refused: anycl ranks candidates by the model's own scores; a second model that drops false negatives "
        "is guide=<model> (with guide_margin)",
    ),
    "include_positives": _only_false("include_positives", "the positives are never candidates in anycl"),
    "output_scores": _only_false("output_scores", "the statistics give the mean positive and negative scores"),
    "use_multi_process": _only_false(
        "use_multi_process", "under accelerate launch anycl shares the queries and corpus out among processes"
    ),
}
# sentence-transformers' positional order after (dataset, model)
ST_POSITIONAL = (
    "anchor_column_name",
    "positive_column_name",
    "corpus",
    "cross_encoder",
    "range_min",
    "range_max",
    "max_score",
    "min_score",
    "absolute_margin",
    "relative_margin",
    "num_negatives",
    "sampling_strategy",
    "query_prompt_name",
    "query_prompt",
    "corpus_prompt_name",
    "corpus_prompt",
    "include_positives",
    "output_format",
    "output_scores",
    "batch_size",
    "faiss_batch_size",
    "use_faiss",
    "use_multi_process",
    "verbose",
    "cache_folder",
    "as_triplets",
    "margin",
)
_ONLY_FALSE = {k for k, v in ST_MINING_ARGS.items() if v.note.startswith("refused unless False")}


def is_st_call(first: Any, second: Any, options: Mapping[str, Any]) -> bool:
    """``mine_hard_negatives(dataset, model)`` (the data first), or sentence-transformers' option names."""
    return st_order(first, second) or any(k in ST_MINING_ARGS and ST_MINING_ARGS[k].option != k for k in options)


def st_order(first: Any, second: Any) -> bool:
    return not callable(first) and callable(second)


def _column_names(data: Any) -> Optional[List[str]]:
    names = getattr(data, "column_names", None)
    if names is None and hasattr(data, "columns") and not callable(data.columns):
        names = list(data.columns)  # a DataFrame
    if names is None and isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        names = list(data[0])
    return list(names) if names is not None else None


def _prompt(model: Any, prompt: Optional[str], name: Optional[str], arg: str) -> str:
    if prompt is not None:
        return str(prompt)
    if name is None:
        return ""
    prompts = getattr(model, "prompts", None) or {}
    if name not in prompts:
        raise ConfigError(f"{arg}={name!r}: the model has no prompt of that name; its prompts are {sorted(prompts)}")
    return str(prompts[name])


def mine_as_st(
    run: Callable[..., Any],
    first: Any,
    second: Any,
    *args: Any,
    corpus: Any = None,
    columns: Optional[Mapping[str, str]] = None,
    verbose: bool = True,
    **kw: Any,
) -> Any:
    """Mine as sentence-transformers' ``mine_hard_negatives`` is called (see the module docstring); ``run`` is
    anycl's ``mine_hard_negatives`` in its own order (``options=`` and ``guide=`` are passed on to it)."""
    order = st_order(first, second)
    data, model = (first, second) if order else (second, first)
    values = dict(kw)
    positional = ST_POSITIONAL if order else ("corpus",)
    if len(args) > len(positional):
        raise TypeError(
            f"mine_hard_negatives takes at most {len(positional)} positional arguments after the data and model"
        )
    for name, value in zip(positional, args):
        if name in values or (name == "corpus" and corpus is not None):
            raise TypeError(f"mine_hard_negatives got multiple values for argument {name!r}")
        values[name] = value
    corpus = values.pop("corpus", corpus)
    verbose = bool(values.pop("verbose", verbose))
    fmt = "triplet" if order else "n-tuple"
    if "as_triplets" in values:
        fmt = "triplet" if values.pop("as_triplets") else "n-tuple"
    fmt = values.pop("output_format", fmt)
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"output_format must be one of {OUTPUT_FORMATS}, got {fmt!r}")
    prompts = {}
    for side, arg in (("query", "query_prompt"), ("corpus", "corpus_prompt")):
        prompts[side] = _prompt(model, values.pop(arg, None), values.pop(f"{arg}_name", None), f"{arg}_name")
    names = (_column_names(data) or []) if order else []
    anchor_col = values.pop("anchor_column_name", None) or (names[0] if names else None)
    positive_col = values.pop("positive_column_name", None) or (names[1] if len(names) > 1 else None)
    values.pop("faiss_batch_size", None)
    options: Dict[str, Any] = dict(ST_DEFAULTS) if order else {}
    for key in list(values):
        entry = ST_MINING_ARGS.get(key)
        if entry is None:
            continue  # anycl's own options (and options=, guide=) go to run as they are
        value = values.pop(key)
        if value is None:
            continue  # sentence-transformers' "not given" (range_max=None: anycl's own window)
        if key in _ONLY_FALSE:
            if value:
                raise ConfigError(
                    f"mine_hard_negatives: {key}=True is not supported ({entry.note[len('refused unless False: ') :]})"
                )
            continue
        if entry.option is None:
            raise ConfigError(f"mine_hard_negatives: {key} is {entry.note}")
        options[entry.option] = entry.convert(value) if entry.convert is not None else value
    options.update(values)
    filters = [k for k in ("max_score", "absolute_margin", "relative_margin") if options.get(k) is not None]
    if options.get("range_min") and filters:
        log.warning(
            "mine_hard_negatives: range_min with %s: anycl skips the range_min best candidates first and then "
            "filters (docs/text.md); sentence-transformers filters first and skips range_min of those left, so the "
            "negatives can differ",
            filters,
        )
    mapping = dict(columns or {})
    mapping.update({side: col for side, col in (("anchor", anchor_col), ("positive", positive_col)) if col})
    pairs = _prompted(data, mapping, prompts)
    docs = None if corpus is None else [prompts["corpus"] + str(d) for d in corpus]
    rows, stats = run(model, pairs, docs, verbose=verbose, **options)
    rows = _unprompted(rows, prompts)
    if order:  # as sentence-transformers: the rows of one query together, queries in order of first appearance
        first_seen: Dict[Any, int] = {}
        for r in rows:
            first_seen.setdefault(r["anchor"], len(first_seen))
        rows = sorted(rows, key=lambda r: first_seen[r["anchor"]])
    out = _formatted(rows, fmt, anchor_col or "anchor", positive_col or "positive")
    if not order:
        return out, stats
    if type(data).__module__.startswith("datasets"):
        from datasets import Dataset  # lazy: only a datasets.Dataset given comes back as one

        return Dataset.from_list(out)
    return out


def _prompted(data: Any, columns: Mapping[str, str], prompts: Mapping[str, str]) -> List[dict]:
    """The (anchor, positive) pairs of ``data``, each side's prompt put before it."""
    rows = to_rows(data, {k: v for k, v in columns.items() if k != v})
    return [
        {"anchor": prompts["query"] + str(a), "positive": prompts["corpus"] + str(p)}
        for a, p in zip(rows.column("anchor"), rows.column("positive"))
    ]


def _unprompted(rows: List[dict], prompts: Mapping[str, str]) -> List[dict]:
    q, c = len(prompts["query"]), len(prompts["corpus"])
    if not q and not c:
        return rows
    return [{k: (v[q:] if k == "anchor" else v[c:]) for k, v in r.items()} for r in rows]


def _formatted(rows: List[dict], fmt: str, anchor_col: str, positive_col: str) -> List[dict]:
    """anycl's rows ``{anchor, positive, negative_1, …}`` in sentence-transformers' ``output_format``."""
    negs = [[v for k, v in r.items() if k.startswith("negative_")] for r in rows]
    if fmt == "n-tuple":
        return [
            {anchor_col: r["anchor"], positive_col: r["positive"], **{f"negative_{j + 1}": n for j, n in enumerate(ns)}}
            for r, ns in zip(rows, negs)
        ]
    if fmt == "triplet":
        return [
            {anchor_col: r["anchor"], positive_col: r["positive"], "negative": n}
            for r, ns in zip(rows, negs)
            for n in ns
        ]
    if fmt == "labeled-list":
        return [
            {anchor_col: r["anchor"], positive_col: [r["positive"], *ns], "labels": [1] + [0] * len(ns)}
            for r, ns in zip(rows, negs)
        ]
    # labeled-pair: per query (in order of first appearance), each of its positives labelled 1, then its negatives 0
    queries: Dict[Any, Dict[str, list]] = {}
    for r, ns in zip(rows, negs):
        q = queries.setdefault(r["anchor"], {"positives": [], "negatives": ns})
        q["positives"].append(r["positive"])
    return [
        {anchor_col: a, positive_col: doc, "label": label}
        for a, q in queries.items()
        for doc, label in [*((p, 1) for p in q["positives"]), *((n, 0) for n in q["negatives"])]
    ]

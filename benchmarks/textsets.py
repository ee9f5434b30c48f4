"""The two text retrieval sets of the text benchmarks, read from Debian dictionaries, with fixed splits.

- **foldoc** (Debian ``dict-foldoc``, computing terms): query = an entry's first sentence with the
  headword removed; document = headword + the rest of the entry.
- **gcide** (Debian ``dict-gcide``, the Collaborative International Dictionary of English, a general
  English dictionary from Webster's 1913): entries with at least two numbered senses; query = the first
  sense's definition (quotations, citations and the headword removed); document = headword, part of speech
  and the other senses. A different character from FOLDOC: everyday and archaic English, short glosses,
  and the query and its document share no sentence.

``splits(name)`` shuffles the entries with a fixed seed and cuts them **by entry** into ``test`` (3,000),
``train`` (2,000) and ``dev`` (1,500); the rest is unused. Settings are chosen on ``dev`` (queries and
corpus of the dev entries) and the ``test`` set is touched once per final setting.
"""

from __future__ import annotations

import gzip
import random
import re
from functools import cache
from typing import Dict, List

DICTD = "/usr/share/dictd"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SPLIT_SEED = 2026
SIZES = {"test": 3000, "train": 2000, "dev": 1500}


def b64(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def clean(text: str) -> str:
    text = re.sub(r"[{}]", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _records(name: str):
    """(headword, raw entry text) for each distinct entry of a dictd dictionary, in file order."""
    data = gzip.open(f"{DICTD}/{name}.dict.dz").read()
    by_offset = {}
    for line in open(f"{DICTD}/{name}.index", encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        by_offset.setdefault((b64(parts[1]), b64(parts[2])), parts[0])
    for (off, length), head in sorted(by_offset.items()):
        yield head, data[off : off + length].decode("utf-8", "replace")


@cache
def parse_foldoc(whole_words: bool = True) -> tuple:
    """One record per distinct FOLDOC entry: {head, query, doc}. The headword is removed from the query as a
    whole word; ``whole_words=False`` removes it inside words too (``"ica"`` out of ``"application"``), as
    the first FOLDOC benchmark (``bench_text_retrieval.py``) did: kept so its results stay reproducible."""
    entries = []
    for head, raw in _records("foldoc"):
        body_lines = [ln for ln in raw.split("\n") if ln.startswith("   ")]
        body = clean(" ".join(body_lines))
        body = re.sub(r"^<[^>]*>\s*", "", body)  # category tags
        body = re.sub(r"\(\d{4}-\d{2}-\d{2}\)\s*$", "", body).strip()  # last-modified date
        if len(body) < 40 or body.lower().startswith("see "):
            continue
        m = re.match(r"(.+?[.!?])\s+(?=[A-Z({])", body)
        first, rest = (m.group(1), body[m.end() :]) if m else (body, "")
        pattern = rf"(?<!\w){re.escape(head)}(?!\w)" if whole_words else re.escape(head)
        query = re.sub(pattern, "", first, flags=re.IGNORECASE)
        query = re.sub(r"^\s*\([^)]*\)\s*", "", query).strip(" ,;:")
        if len(query.split()) < 4 or len(rest.split()) < 5:
            continue
        entries.append({"head": head, "query": query, "doc": f"{head}. {rest}"})
    return tuple(entries)


_SENSE = re.compile(r"^   (\d+)\. (.*)")
_POS = re.compile(r"\\,\s*([a-z. &]+?)(?:\s*\[|$)")


def _gcide_senses(raw: str):
    """(headword, part of speech, [sense texts]) of one GCIDE entry; quotations and notes left out."""
    lines = raw.split("\n")
    head = lines[0].split(" \\", 1)[0].strip()
    pos_m = _POS.search(lines[0])
    pos = pos_m.group(1).strip(" .") if pos_m else ""
    senses, cur = [], None
    for ln in lines[1:]:
        m = _SENSE.match(ln)
        if m:
            cur = [m.group(2)]
            senses.append(cur)
        elif cur is not None and ln.startswith("      ") and not ln.startswith("         "):
            cur.append(ln.strip())  # the sense's own continuation line (quotations are indented deeper)
        elif ln.startswith("   ") and not ln.startswith("    "):
            cur = None  # a phrase ({...}), Note:, Syn: or Usage: block ends the sense
    out = []
    for s in senses:
        t = " ".join(x for x in s if not x.startswith("["))
        t = re.sub(r"\[(?:1913 Webster|WordNet[^\]]*|PJC|Obs\.|R\.|Colloq\.)\]", "", t)
        t = re.sub(r"--\s?[A-Z][\w.' ]*\.?", "", t)  # citations such as --Shak.
        t = re.sub(r"\"[^\"]*\"", "", t)  # inline quotations
        t = re.sub(r"^\([^)]*\)\s*", "", clean(t))  # a leading field label such as (Arch.)
        out.append(clean(t).strip(" ,;:"))
    return head, pos, out


@cache
def parse_gcide() -> tuple:
    """One record per GCIDE headword (its first entry) with two or more numbered senses: {head, query, doc}."""
    entries, seen = [], set()
    for _, raw in _records("gcide"):
        head, pos, senses = _gcide_senses(raw)
        key = head.lower()
        if key in seen or len(senses) < 2 or not head.isascii():
            continue
        seen.add(key)
        query = re.sub(r"\b" + re.escape(head) + r"\w*", "", senses[0], flags=re.IGNORECASE)
        query = clean(query).strip(" ,;:")
        rest = " ".join(f"{i + 2}. {s}" for i, s in enumerate(senses[1:]) if s)
        if len(query.split()) < 4 or len(rest.split()) < 5:
            continue
        entries.append({"head": head, "query": query, "doc": f"{head} ({pos}). {rest}" if pos else f"{head}. {rest}"})
    return tuple(entries)


PARSERS = {"foldoc": parse_foldoc, "gcide": parse_gcide}


@cache
def splits(name: str) -> Dict[str, List[dict]]:
    """Fixed split by entry: test, train, dev (sizes in ``SIZES``), from one shuffle with ``SPLIT_SEED``."""
    entries = list(PARSERS[name]())
    random.Random(SPLIT_SEED).shuffle(entries)
    out, at = {}, 0
    for part in ("test", "train", "dev"):
        out[part] = entries[at : at + SIZES[part]]
        at += SIZES[part]
    if len(out["dev"]) < SIZES["dev"]:
        raise SystemExit(f"{name}: only {len(entries)} usable entries, fewer than the splits need ({at})")
    return out


def retrieval_set(name: str, part: str) -> dict:
    """Queries, corpus and relevance of one split part (each query's own entry is its one relevant document)."""
    ents = splits(name)[part]
    return {
        "queries": [e["query"] for e in ents],
        "corpus": [e["doc"] for e in ents],
        "relevant": [[i] for i in range(len(ents))],
    }


def train_pairs(name: str) -> List[dict]:
    return [{"anchor": e["query"], "positive": e["doc"]} for e in splits(name)["train"]]


if __name__ == "__main__":
    for n in PARSERS:
        ents = PARSERS[n]()
        print(f"{n}: {len(ents)} usable entries")
        for e in random.Random(0).sample(list(ents), 3):
            print("  Q:", e["query"][:160])
            print("  D:", e["doc"][:200])

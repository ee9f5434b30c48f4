"""GradCache benchmark: peak memory and time of one InfoNCE training step, with and without GradCache.

For each modality (text: all-MiniLM-L6-v2 on FOLDOC headword → first definition sentence pairs;
audio: the default audio encoder on the sonic-pi samples, two random segments of a clip as a pair)
and each global batch size, every configuration runs in a fresh subprocess, so its peak resident
memory (``ru_maxrss``) is its own. The child loads the model and the data, builds the batch, takes one
warm-up step at a small batch (allocating the optimiser state), records its resident memory
("baseline"), then times one full step at the target batch: forward, loss, backward, AdamW step.
Memory reported: the process peak and the peak above the baseline (what the step itself needed).

A parent-side watchdog kills a child whose resident memory passes ``--cap-gb`` (the machine is shared),
and the table says so instead of giving a number. Configurations alternate plain / GradCache so that
machine load hits both.

    PYTHONPATH=. python benchmarks/bench_gradcache.py                 # writes benchmarks/results/gradcache.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import rss_mb  # noqa: E402

FOLDOC = "/usr/share/dictd/foldoc.dict.dz"
SONIC_PI = "/usr/share/sonic-pi/samples"
RESULTS = Path(__file__).resolve().parent / "results" / "gradcache.md"


# -- data (real, installed by apt) ---------------------------------------------------------------------
def foldoc_pairs(n: int):
    """(headword, first sentence of its definition) for the first ``n`` usable FOLDOC entries."""
    text = gzip.open(FOLDOC, "rt", encoding="utf-8", errors="replace").read()
    pairs, head, body = [], None, []
    for line in text.splitlines() + ["END"]:
        if line and not line[0].isspace():
            if head and body:
                definition = " ".join(" ".join(body).split())
                definition = re.sub(r"<[^>]*>\s*", "", definition)  # drop "<programming>" tags
                sentence = definition.split(". ")[0].strip()
                if len(sentence) > 20 and not head.startswith("00-"):
                    pairs.append({"anchor": head.strip(), "positive": sentence})
            head, body = line, []
        elif line.strip():
            body.append(line.strip())
    seen, out = set(), []
    for p in pairs:
        if p["anchor"] not in seen:
            seen.add(p["anchor"])
            out.append(p)
    if len(out) < n:
        raise SystemExit(f"FOLDOC gave {len(out)} pairs, fewer than {n}")
    return out[:n]


def sonic_pi_rows(n: int):
    clips = sorted(str(p) for p in Path(SONIC_PI).glob("*.flac"))
    return [{"anchor": clips[i % len(clips)]} for i in range(n)]


# -- one configuration, in a child process --------------------------------------------------------------


def child(modality: str, batch_size: int, mini: int, threads: int, seq_len: int, clip_seconds: float) -> dict:
    import torch

    torch.set_num_threads(threads)
    from anycl import losses
    from anycl.api import build_model
    from anycl.data.batching import BatchBuilder
    from anycl.training.gradcache import GradCache
    from anycl.training.trainer import TrainingModule, split_loss

    torch.manual_seed(0)
    sides = {s: modality for s in ("anchor", "positive", "negative")}
    if modality == "text":
        model = build_model(sides, adapter_options={"max_seq_length": seq_len})
        rows = foldoc_pairs(batch_size)
    else:
        model = build_model(sides, adapter_options={"clip_seconds": clip_seconds})
        rows = sonic_pi_rows(batch_size)
    module = TrainingModule(model, losses.get("infonce", temperature=0.05))
    module.train()
    builder = BatchBuilder({s: model.tower(s).adapter for s in sides}, [])
    batch = builder.build(rows, torch.Generator().manual_seed(0))
    warm = builder.build(rows[:32], torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
    gc = GradCache(mini) if mini else None

    def step(b):
        gen = torch.Generator().manual_seed(2)
        if gc is None:
            loss, _ = split_loss(module(b, gen))
            loss.backward()
        else:
            loss, _ = gc.step(module, b, gen)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    step(warm)
    baseline = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    loss = step(batch)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "modality": modality,
        "batch": batch_size,
        "mini": mini,
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_mb": peak,
        "baseline_mb": baseline,
        "step_mb": peak - baseline,
        "loss": loss,
    }


def run_child(args, modality, batch, mini, cap_gb):
    cmd = [
        sys.executable,
        __file__,
        "--child",
        modality,
        str(batch),
        str(mini),
        "--threads",
        str(args.threads),
        "--seq-len",
        str(args.seq_len),
        "--clip-seconds",
        str(args.clip_seconds),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    over = False
    while proc.poll() is None:
        try:
            rss = int(next(line for line in open(f"/proc/{proc.pid}/status") if line.startswith("VmRSS:")).split()[1])
        except (OSError, StopIteration, ValueError):
            rss = 0
        if rss > cap_gb * 1024**2:
            proc.kill()
            over = True
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    if over:
        return {"modality": modality, "batch": batch, "mini": mini, "over_cap": cap_gb}
    if proc.returncode != 0:
        return {"modality": modality, "batch": batch, "mini": mini, "error": err.strip().splitlines()[-1:]}
    return json.loads(out.strip().splitlines()[-1])


def fmt(r):
    if "over_cap" in r:
        return f"> {r['over_cap']:.0f} GB cap (killed)", "—", "—"
    if "error" in r:
        return f"failed: {r['error']}", "—", "—"
    return f"{r['peak_mb']:.0f}", f"{r['step_mb']:.0f}", f"{r['cpu_s']:.1f} ({r['seconds']:.0f})"


def write_results(results, args, started, wall):
    lines = [
        "# GradCache benchmark: peak memory and time of one InfoNCE step",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_gradcache.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Date: {started} UTC; wall time {wall / 60:.1f} min. Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {args.torch}, {args.threads} threads per run. **No GPU in this task**: CPU only.",
        "",
        f"Load before (`../shared/tools/idle-check`): `{args.load_before}`  ",
        f"Load after: `{args.load_after or 'the run is still going'}`",
        "",
        f"One training step (forward, InfoNCE loss, backward, AdamW step) at each global batch, each configuration "
        f"in a fresh process. GradCache mini-batch: {args.mini} rows. *Peak* is the process's peak resident memory "
        f"(ru_maxrss, includes model, data and optimiser); *step* is the peak minus the resident memory just before "
        f"the step (what the step needed). A run whose memory passed {args.cap_gb:.0f} GB was killed. "
        f"Time is the step's process CPU time (one thread, so it is the compute the step costs); wall seconds in "
        f"brackets. 'not run' = not reached before the time limit "
        f"(--deadline-min {args.deadline_min}).",
        "",
        f"- text: all-MiniLM-L6-v2, max_seq_length {args.seq_len}, FOLDOC headword → first definition sentence pairs.",
        f"- audio: the default audio encoder (AudioCNN, channels {'-'.join(map(str, args.audio_spec['channels']))}, "
        f"{args.audio_spec['embedding_dim']}-d, MLP head), "
        f"{args.clip_seconds} s windows at 16 kHz from the {len(list(Path(SONIC_PI).glob('*.flac')))} sonic-pi "
        f"samples (clips repeat in big batches; two random segments of a clip form a pair).",
        "",
        "| modality | batch | plain peak MB | plain step MB | plain CPU s/step (wall) | GradCache peak MB "
        "| GradCache step MB | GradCache CPU s/step (wall) | CPU time ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["modality"], r["batch"], bool(r["mini"])): r for r in results}
    for modality in args.modalities:
        for b in args.batches:
            p, g = by.get((modality, b, False)), by.get((modality, b, True))
            if p is None and g is None:
                continue
            pf = fmt(p) if p else ("not run",) * 3
            gf = fmt(g) if g else ("not run",) * 3
            ratio = f"{g['cpu_s'] / p['cpu_s']:.2f}×" if p and g and "cpu_s" in p and "cpu_s" in g else "—"
            lines.append(f"| {modality} | {b} | {' | '.join(pf)} | {' | '.join(gf)} | {ratio} |")
    lines += ["", "Targets: GradCache peak memory flat (±20%) as the batch grows; time overhead ≤ 1.5×.", ""]
    for modality in args.modalities:
        g = [by.get((modality, b, True)) for b in args.batches]
        g = [r for r in g if r and "peak_mb" in r]
        if len(g) >= 2:
            lo, hi = g[0]["peak_mb"], g[-1]["peak_mb"]
            flat = "met" if abs(hi / lo - 1) <= 0.2 else "**not met**"
            lines.append(
                f"- {modality}: GradCache peak {lo:.0f} MB at batch {g[0]['batch']} → {hi:.0f} MB at "
                f"{g[-1]['batch']} ({(hi / lo - 1) * 100:+.0f}%): flat within ±20 % {flat}; step memory "
                f"{g[0]['step_mb']:.0f} → {g[-1]['step_mb']:.0f} MB."
            )
        pairs = [(by.get((modality, b, False)), by.get((modality, b, True))) for b in args.batches]
        ratios = [g["cpu_s"] / p["cpu_s"] for p, g in pairs if p and g and "cpu_s" in p and "cpu_s" in g]
        if ratios:
            over = "met" if max(ratios) <= 1.5 else "**not met**"
            lines.append(
                f"- {modality}: GradCache's CPU time over the plain step's, where both ran: "
                f"{', '.join(f'{r:.2f}×' for r in ratios)}: overhead ≤ 1.5× {over} (a batch whose plain step passed "
                f"the memory cap has no ratio)."
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=3, metavar=("MODALITY", "BATCH", "MINI"))
    ap.add_argument("--modalities", nargs="+", default=["text", "audio"])
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 1024, 4096])
    ap.add_argument("--mini", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--deadline-min", type=float, default=30.0, help="start no configuration after this many minutes")
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--clip-seconds", type=float, default=0.5)
    ap.add_argument("--cap-gb", type=float, default=6.0)
    args = ap.parse_args()
    if args.child:
        m, b, mini = args.child
        print(json.dumps(child(m, int(b), int(mini), args.threads, args.seq_len, args.clip_seconds)))
        return
    import torch
    from idle import idle_line

    from anycl.adapters.audio_encoder import AudioCNN

    args.torch = torch.__version__
    args.audio_spec = AudioCNN().anycl_spec  # what build_model makes for audio by default
    args.load_before, args.load_after = idle_line(), None
    started, t0 = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), time.time()
    results = []
    for b in args.batches:
        for modality in args.modalities:
            order = [0, args.mini] if (b // 256) % 2 else [args.mini, 0]  # alternate which goes first
            for mini in order:
                if time.time() - t0 > args.deadline_min * 60:
                    break
                r = run_child(args, modality, b, mini, args.cap_gb)
                print(json.dumps(r), flush=True)
                results.append(r)
                write_results(results, args, started, time.time() - t0)
    args.load_after = idle_line()
    write_results(results, args, started, time.time() - t0)


if __name__ == "__main__":
    main()

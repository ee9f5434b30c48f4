"""The screenshots of the training report in docs/cli.md (docs/img/report-*.png), taken with headless Chromium.

Three small runs, each writing its report: images (scikit-learn's digits saved as PNGs in class folders, with a
kNN probe on held-out digits), audio (synthetic clips of three kinds, in class folders) and text (the pydoc pairs
of docs/cli.md's first command, evaluated on the test pairs). Each section of a page is cut out into a page of
its own, rendered by Chromium, trimmed and saved as a small palette PNG.

    python docs/img/report_screenshots.py [WORK_DIR]      # needs `apt-get install -y chromium`; a few minutes
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

import anycl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = "/usr/bin/chromium"
WIDTH = 960


def digits(root: Path, per_class: int = 25, classes: int = 6):
    """Digits 0..classes-1 as 8x8 grey PNGs in class folders, and a held-out labelled set for the probe."""
    from sklearn.datasets import load_digits

    d = load_digits()
    probe, seen = [], {}
    for img, y in zip(d.images, d.target):
        if y >= classes:
            continue
        seen[y] = seen.get(y, 0) + 1
        pixels = (img * 255 / 16).astype(np.uint8)
        if seen[y] <= per_class:
            (root / "train" / f"digit{y}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "train" / f"digit{y}" / f"{seen[y]:03d}.png")
        elif seen[y] <= per_class + 8:
            (root / "probe" / f"digit{y}").mkdir(parents=True, exist_ok=True)
            path = root / "probe" / f"digit{y}" / f"{seen[y]:03d}.png"
            Image.fromarray(pixels).save(path)
            probe.append({"anchor": str(path), "label": f"digit{y}"})
    return root / "train", probe


def clips(root: Path, per_class: int = 8, sr: int = 16000):
    """Three kinds of 3-second clips in class folders: a decaying low drum, a noise hi-hat, a chord."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * sr) / sr
    for kind in ("kick", "hat", "chord"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            beat = (t * (2 + i / 8)) % 1.0
            if kind == "kick":
                x = np.sin(2 * np.pi * (50 + 10 * i) * t) * np.exp(-beat * 12)
            elif kind == "hat":
                x = rng.normal(0, 1, t.size) * np.exp(-beat * 40)
            else:
                x = sum(np.sin(2 * np.pi * f * (1 + i / 40) * t) for f in (262, 330, 392)) / 3
            sf.write(root / kind / f"{kind}_{i}.wav", (0.5 * x).astype(np.float32), sr)
    return root


def sections(page: str):
    """{name: the HTML of one section} of a report page."""
    head = page[: page.index("<body>") + len("<body>")].replace("max-width:64em", "max-width:56em")
    found = {}
    if "<section class=health" in page:
        a = page.index("<section class=health")
        found["health"] = page[a : page.index("</section>", a) + len("</section>")]
    if "<h2 id=neighbours>" in page:
        a = page.index("<h2 id=neighbours>")
        found["neighbours"] = page[a : page.index("</table>", a) + len("</table>")]
    figs = re.findall(r"<h3>[^<]+</h3><figure>.*?</figure>", page, flags=re.S)
    found["curves"] = "".join(f for f in figs if "Positive vs hardest" in f or "Collapse watch" in f)
    if "<h3>Embedding map</h3>" in page:
        a = page.index("<h3>Embedding map</h3>")
        block = page[a : page.index("</details>", a) + len("</details>")]
        rows = re.findall(r"<tr><td>\d+</td>.*?</tr>", block)
        block = block.replace("".join(rows), "".join(rows[:6])).replace("<details>", "<details open>")
        found["map"] = block
    return {k: head + v + "</body></html>" for k, v in found.items() if v}


def shoot(html: str, out: Path, work: Path) -> None:
    page = work / (out.stem + ".html")
    page.write_text(html)
    shot = work / (out.stem + ".raw.png")
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={work / 'profile'}",
            f"--window-size={WIDTH},4000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    im = Image.open(shot).convert("RGB")
    ink = np.asarray(im.convert("L")) < 250
    rows, cols = np.where(ink)
    im = im.crop((max(0, cols.min() - 12), max(0, rows.min() - 12), min(im.width, cols.max() + 12), rows.max() + 12))
    im.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB, {im.width}x{im.height})")


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    train, probe = digits(work / "digits")
    anycl.fit(
        str(train),
        modality="image",
        adapter_options={"preset": "small", "size": 16, "mode": "L"},
        encoder_options={"arch": "resnet10", "width": 16},
        eval_dataset=probe,
        probe={"k": 5},
        batch_size=32,
        epochs=12,
        seed=0,
        progress=False,
        output_dir=str(work / "image-run"),
        overwrite=True,
    )
    anycl.fit(
        str(clips(work / "clips")),
        modality="audio",
        adapter_options={"clip_seconds": 1.0},
        batch_size=8,
        epochs=6,
        seed=0,
        progress=False,
        output_dir=str(work / "audio-run"),
        overwrite=True,
    )
    anycl.fit(
        str(ROOT / "examples/data/pydoc_train.csv"),
        modality="text",
        eval_dataset=str(ROOT / "examples/data/pydoc_test.csv"),
        epochs=1,
        seed=0,
        progress=False,
        output_dir=str(work / "text-run"),
        overwrite=True,
    )
    image = sections((work / "image-run" / "report.html").read_text())
    audio = sections((work / "audio-run" / "report.html").read_text())
    text = sections((work / "text-run" / "report.html").read_text())
    for name, html in (
        ("report-health", image["health"]),
        ("report-neighbours-image", image["neighbours"]),
        ("report-neighbours-audio", audio["neighbours"]),
        ("report-neighbours-text", text["neighbours"]),
        ("report-curves", image["curves"]),
        ("report-map", image["map"]),
    ):
        shoot(html, HERE / f"{name}.png", work)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="anycl-shots-")))

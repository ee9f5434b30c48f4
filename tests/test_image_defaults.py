"""Defaults that fit the images (issue 30, item 4): the preset follows the images' size, a step's memory is
estimated before the first step, class folders give labels, and unreadable files are found once before training."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anycl
from anycl import cli
from anycl.adapters.image import ImageAdapter
from anycl.adapters.image_io import SCAN_DECODE_PIXELS, header_size, scan
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError, DataError
from anycl.fitting import memory
from anycl.fitting.items import data_adapter_options
from anycl.options.fit_config import FitConfig

SIDES = {"anchor": "image", "positive": "image", "negative": "image"}
QUICK = dict(epochs=1, batch_size=8, progress=False, seed=0)


def picture(seed: int, size: int = 28) -> np.ndarray:
    """A blob on a plain background: two 'classes' by seed parity (bright on dark, dark on bright)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 30 if seed % 2 else 220, np.uint8)
    y, x = rng.integers(0, size - size // 3, 2)
    img[y : y + size // 3, x : x + size // 3] = 220 if seed % 2 else 30
    return img


def save(folder: Path, name: str, img: np.ndarray, fmt: str = "PNG") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / name, format=fmt)
    return folder / name


def encoded(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def noise(size: int) -> np.ndarray:
    return np.random.default_rng(size).integers(0, 256, (size, size, 3)).astype(np.uint8)


def preset_lines(caplog):
    return [
        r.getMessage() for r in caplog.records if "preset='small'" in r.getMessage() and "are small" in r.getMessage()
    ]


# ---- 1. the preset follows the images' size ----------------------------------------------------------------------
def test_header_size_reads_no_pixels(tmp_path):
    path = save(tmp_path, "a.png", picture(0, 28))
    assert header_size(str(path)) == (28, 28)
    assert header_size(encoded(np.zeros((10, 30, 3), np.uint8), "JPEG")) == (30, 10)
    assert header_size({"bytes": encoded(np.zeros((7, 9, 3), np.uint8), "PNG"), "path": None}) == (9, 7)
    assert header_size(np.zeros((5, 6, 3), np.uint8)) == (6, 5) and header_size(torch.zeros(3, 5, 6)) == (6, 5)
    assert header_size(b"not an image") is None


def test_small_images_choose_the_small_preset_once_said(caplog):
    small, large = [picture(i, 28) for i in range(4)], [picture(0, 28), picture(1, 96)]
    with caplog.at_level(logging.INFO, logger="anycl"):
        assert ImageAdapter.data_options(small, {}) == {"preset": "small"}
    (line,) = preset_lines(caplog)
    assert "4 sampled are at most 28x28 px" in line and "224 px" in line and "'simclr'" in line
    assert ImageAdapter.data_options(large, {}) == {}  # one image over 64 px: the user's recipe stays
    assert ImageAdapter.data_options(small, {"preset": "simclr"}) == {}  # a preset given is kept
    assert ImageAdapter.data_options(small, {"size": 48}) == {}  # so is a crop size
    assert ImageAdapter.data_options([b"junk"], {}) == {}  # nothing readable: nothing chosen


def test_data_options_keep_other_options_and_other_towers():
    items = [{"anchor": picture(i), "positive": f"caption {i}"} for i in range(4)]
    rows = {"": to_rows(items)}
    cross = {"anchor": "image", "positive": "text", "negative": "text"}
    cfg = FitConfig.build(None, {"adapter_options": {"image": {"mode": "L"}, "text": {"max_seq_length": 16}}})
    assert data_adapter_options(cfg, cross, rows) == {
        "image": {"mode": "L", "preset": "small"},
        "text": {"max_seq_length": 16},
    }
    plain = FitConfig.build(None, {"adapter_options": {"mode": "L"}})
    assert data_adapter_options(plain, SIDES, {"": to_rows([picture(i) for i in range(4)])}) == {
        "image": {"mode": "L", "preset": "small"}
    }
    given = FitConfig.build(None, {"encoder": torch.nn.Flatten()})  # the user's encoder has its own input size
    assert data_adapter_options(given, SIDES, rows) is None


def test_fit_on_a_folder_of_28px_images_picks_the_small_preset(tmp_path, caplog):
    """The user test: ``anycl.fit("photos/", modality="image")`` on 28 px photos."""
    for i in range(24):
        save(tmp_path / "photos", f"{i}.png", picture(i, 28))
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(str(tmp_path / "photos"), modality="image", **QUICK)
    (line,) = preset_lines(caplog)
    assert "24 sampled are at most 28x28 px" in line
    adapter = model.tower("anchor").adapter
    assert adapter.options["preset"] == "small" and adapter.size == 32
    assert model.tower("anchor").encoder.anycl_spec["arch"] == "cnn"  # the small CNN, not a 224 px ResNet
    memory_lines = [r.getMessage() for r in caplog.records if "a training step needs about" in r.getMessage()]
    assert len(memory_lines) == 1 and "of 32 px" in memory_lines[0]


def test_the_upsampling_hint_names_the_small_preset(caplog):
    with caplog.at_level(logging.WARNING, logger="anycl"):
        ImageAdapter().load(picture(0, 28))
        ImageAdapter(preset="small").load(picture(0, 20))
    hints = [r.getMessage() for r in caplog.records if "upsampled" in r.getMessage()]
    assert len(hints) == 2
    assert "preset='small'" in hints[0] and "set size=" in hints[0]
    assert "preset='small'" not in hints[1]  # already the small recipe: only size= is left to say


# ---- 2. a step's memory before the first step --------------------------------------------------------------------
MEASURE = r"""
import json, sys, torch
torch.set_num_threads(1)
from anycl.api import build_model
from anycl.data.inputs import to_rows
from anycl.fitting.memory import estimate
from anycl.losses import get as get_loss

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

adapter, encoder, batch = json.loads(sys.argv[1])
model = build_model({s: "image" for s in ("anchor", "positive", "negative")}, model=None, encoder=None,
                    encoder_options=encoder, adapter_options=adapter, head="default")
est = estimate(model, to_rows([torch.zeros(3, 8, 8)] * batch), batch)
tower = model.tower("anchor")
g = torch.Generator().manual_seed(0)
views = [torch.randint(0, 256, (batch, 3, tower.adapter.size, tower.adapter.size), generator=g, dtype=torch.uint8)
         for _ in range(2)]
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
loss_fn = get_loss("infonce")
model.train()
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) from here on
base = status("VmRSS:")
loss = loss_fn(tower(views[0], train=True, generator=g), tower(views[1], train=True, generator=g))
loss.backward()
opt.step()
print(json.dumps({"measured": status("VmHWM:") - base, "estimate": est["state"] + est["activations"]}))
"""


def measured_step(adapter_options, encoder_options, batch):
    """(estimate, measured) bytes of one forward, backward and AdamW step on CPU, in a fresh process: the growth of
    its peak resident memory over what it held before the step (the weights: the estimate counts them apart)."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps([adapter_options, encoder_options, batch])],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["estimate"], got["measured"]


needs_proc = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads the peak RSS from /proc")


@needs_proc
def test_memory_estimate_is_within_its_stated_factor_of_a_measured_step():
    est, measured = measured_step({"preset": "small"}, {}, 64)  # the small preset's CNN: ~200 MB
    assert measured > 50 * 2**20  # the step dominates the noise of the allocator
    assert 1 / memory.STATED_FACTOR <= est / measured <= memory.STATED_FACTOR, (est, measured)


@needs_proc
@pytest.mark.slow
def test_memory_estimate_holds_for_a_resnet():
    est, measured = measured_step({"preset": "small", "size": 64}, {"arch": "resnet10", "width": 32}, 32)
    assert measured > 50 * 2**20
    assert 1 / memory.STATED_FACTOR <= est / measured <= memory.STATED_FACTOR, (est, measured)


def test_estimate_counts_views_negatives_and_optimiser_state():
    model = anycl.api.build_model(SIDES, model=None, encoder=None, encoder_options={"width": 8},
                                  adapter_options={"preset": "small"}, head=None)  # fmt: skip
    lone = to_rows([picture(i) for i in range(8)])
    pairs = to_rows([{"anchor": picture(i), "positive": picture(i + 1), "negative": picture(i + 2)} for i in range(8)])
    one = memory.estimate(model, lone, 1)
    params = sum(p.numel() for p in model.parameters())
    assert one["weights"] == 4 * params and one["state"] == 12 * params  # float32: gradient + AdamW's 2 moments
    assert one["items"] == {"image": 2}  # two views of each lone image
    assert memory.estimate(model, lone, 4)["activations"] == pytest.approx(4 * one["activations"], abs=4)
    three = memory.estimate(model, pairs, 1)
    assert three["items"] == {"image": 3}  # anchor, positive, hard negative
    assert three["activations"] == pytest.approx(1.5 * one["activations"], abs=4)
    assert memory.estimate(model, lone, 1, mixed=True)["activations"] == pytest.approx(one["activations"] / 2, abs=4)
    assert memory.estimate(model, lone, 1, counts=(4, 2))["items"] == {"image": 6}


def test_a_step_that_does_not_fit_is_a_config_error_naming_the_numbers(tmp_path, monkeypatch):
    for i in range(24):
        save(tmp_path / "photos", f"{i}.png", picture(i, 28))
    model = anycl.api.build_model(SIDES, model=None, encoder=None, encoder_options=None,
                                  adapter_options={"preset": "small"}, head="default")  # fmt: skip
    one = memory.estimate(model, to_rows([picture(0)] * 24), 1)  # what fit builds for these images
    room = int(one["state"] + 6.5 * one["per_row"])  # room for 6 rows of activations
    monkeypatch.setattr(memory, "available", lambda cpu: (room, "available RAM", False))
    with pytest.raises(ConfigError) as err:
        # fp32 given: the estimate above is fp32's (under "auto"'s bf16 activations are counted at half)
        anycl.fit(
            str(tmp_path / "photos"), modality="image", epochs=1, batch_size=24, progress=False, mixed_precision="no"
        )
    said = str(err.value)
    need = one["state"] + 24 * one["activations"]
    assert f"a training step needs about {need / 2**30:.2f} GB" in said and "48 image items of 32 px" in said
    assert f"{room / 2**30:.2f} GB is available RAM" in said
    assert "batch_size=4 fits (or keep the batch with gradcache_mini_batch=4)" in said  # 6 rows fit: a power of 2
    assert "ANYCL_MEMORY_CHECK=0" in said
    monkeypatch.setenv("ANYCL_MEMORY_CHECK", "0")  # the way out the message names
    assert anycl.fit(str(tmp_path / "photos"), modality="image", epochs=1, batch_size=24, progress=False)
    monkeypatch.delenv("ANYCL_MEMORY_CHECK")
    assert anycl.fit(str(tmp_path / "photos"), modality="image", epochs=1, batch_size=4, progress=False)


def test_available_memory_reads_the_system():
    free, where, on_gpu = memory.available(cpu=True)
    assert free > 0 and "RAM" in where and not on_gpu


# ---- 3. class folders give labels --------------------------------------------------------------------------------
def class_folder(root: Path, per_class: int = 8) -> Path:
    for i in range(2 * per_class):
        save(root / ("bright" if i % 2 == 0 else "dark"), f"{i}.png", picture(i))
    return root


def test_class_folders_give_a_label_column(tmp_path, caplog):
    root = class_folder(tmp_path / "photos", 3)
    (root / "dark" / "deeper").mkdir()
    save(root / "dark" / "deeper", "x.png", picture(9))  # deeper files belong to their top folder's class
    with caplog.at_level(logging.INFO, logger="anycl"):
        rows = to_rows(str(root), file_extensions=ImageAdapter.file_extensions)
    assert rows.has_label and len(rows) == 7
    got = {Path(r["anchor"]).relative_to(root).as_posix(): r["label"] for r in rows}
    want = {p.relative_to(root).as_posix(): p.relative_to(root).parts[0] for p in root.rglob("*.png")}
    assert got == want  # torchvision's ImageFolder: the class is the top folder's name
    assert any("2 class folders (bright, dark)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("layout", ["flat", "one_folder", "file_at_top"])
def test_flat_folders_keep_no_labels(tmp_path, layout):
    root = tmp_path / "photos"
    if layout == "flat":
        for i in range(3):
            save(root, f"{i}.png", picture(i))
    elif layout == "one_folder":
        for i in range(3):
            save(root / "all", f"{i}.png", picture(i))
    else:
        class_folder(root, 2)
        save(root, "top.png", picture(5))
    rows = to_rows(str(root), file_extensions=ImageAdapter.file_extensions)
    assert rows.columns == ["anchor"] and not rows.has_label


def test_class_folders_evaluate_train_supcon_and_colour_the_report(tmp_path, capsys):
    root = class_folder(tmp_path / "photos")
    model = anycl.fit(str(root), modality="image", loss="supcon", output_dir=str(tmp_path / "out"), **QUICK)
    assert model.info["loss"] == "supcon"
    page = (tmp_path / "out" / "report.html").read_text()
    assert "bright" in page and "dark" in page  # the report names the classes (its colours, its examples)
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "out"), str(root), "--k", "3", "-q"]) == 0  # no CSV needed
    out = capsys.readouterr().out
    assert "knn" in out.lower() and "accuracy" in out.lower()


def test_class_folders_are_probe_data(tmp_path):
    from anycl.evaluation.probe import probe_evaluator

    train, test = class_folder(tmp_path / "train", 4), class_folder(tmp_path / "test", 2)
    probe = probe_evaluator(
        {"train": str(train), "test": str(test)}, {"k": 3}, file_extensions=ImageAdapter.file_extensions
    )
    assert sorted(set(probe.train_labels)) == ["bright", "dark"] and len(probe.test_items) == 4
    model = anycl.fit(str(train), modality="image", eval_dataset={"train": str(train), "test": str(test)},
                      probe={"k": 3}, **QUICK)  # fmt: skip
    assert 0.0 <= model.trainer.eval_history[-1]["knn@3_accuracy"] <= 1.0


# ---- 4. unreadable files found once, before training -------------------------------------------------------------
def bad_files(folder: Path) -> dict:
    """A truncated PNG, random bytes named .png, a truncated large JPEG (past the size decoded whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    png = encoded(picture(0, 28), "PNG")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "random.png").write_bytes(np.random.default_rng(1).integers(0, 256, 300).astype(np.uint8).tobytes())
    big = encoded(noise(600), "JPEG")
    (folder / "cut.jpg").write_bytes(big[: len(big) * 2 // 3])
    return {p.name: p for p in folder.iterdir()}


def test_scan_finds_truncated_random_and_cut_files(tmp_path):
    assert 600 * 600 > SCAN_DECODE_PIXELS  # the large JPEG takes the end-marker path
    for name, path in bad_files(tmp_path).items():
        with pytest.raises(DataError, match=rf"{name}.*(corrupt, truncated or not an image)"):
            scan(str(path))
    png = encoded(noise(600), "PNG")
    with pytest.raises(DataError, match="corrupt, truncated"):
        scan(png[: len(png) - 40])  # a large PNG: its chunks' checksums verified
    for img, fmt in [(picture(0), "PNG"), (picture(0), "JPEG"), (noise(600), "PNG"), (noise(600), "JPEG")]:
        scan(encoded(img, fmt))  # good files pass
        scan({"bytes": encoded(img, fmt), "path": None})
    scan(encoded(noise(600), "JPEG") + b"\x00\x00")  # trailing zero bytes after the end marker are harmless
    scan(picture(0))  # decoded items have nothing to scan
    with pytest.raises(DataError, match="max_pixels"):
        scan(encoded(picture(0), "PNG"), max_pixels=100)
    with pytest.raises(DataError, match="does not exist"):
        scan(str(tmp_path / "missing.png"))


def test_an_unreadable_file_stops_fit_before_training_naming_it(tmp_path, monkeypatch):
    from anycl.training.trainer import Trainer

    for i in range(12):
        save(tmp_path / "photos", f"{i}.png", picture(i))
    bad_files(tmp_path / "photos")

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(Trainer, "train", no_training)
    with pytest.raises(
        DataError, match=r"cut\.jpg.*found before training \(3 rows in all.*random\.png.*on_bad_item='skip'"
    ):
        anycl.fit(str(tmp_path / "photos"), modality="image", **QUICK)


def test_skip_reports_a_bad_file_once_for_the_run(tmp_path, caplog):
    for i in range(12):
        save(tmp_path / "photos", f"{i}.png", picture(i))
    bad_files(tmp_path / "photos")
    with caplog.at_level(logging.WARNING, logger="anycl"):
        model = anycl.fit(  # the preset given: the sample's headers include the 600 px JPEG
            str(tmp_path / "photos"), modality="image", on_bad_item="skip", adapter_options={"preset": "small"},
            **{**QUICK, "epochs": 3},
        )  # fmt: skip
    said = [
        r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage() or "unreadable" in r.getMessage()
    ]
    assert len(said) == 1 and "skipping 3 of 15 rows" in said[0] and "found before training" in said[0]
    assert model.trainer.builder.skipped == 0  # never met again, in any epoch
    assert len(model.trainer.rows) == 12


def test_skip_leaving_one_row_is_a_clear_error(tmp_path):
    save(tmp_path / "photos", "good.png", picture(0))
    bad_files(tmp_path / "photos")
    with pytest.raises(ConfigError, match="1 row left once the 3 with unreadable items are skipped"):
        anycl.fit(str(tmp_path / "photos"), modality="image", on_bad_item="skip", **QUICK)

"""The wide shallow 'cnn' image encoder (shapes, pooling against a reference, save/load, bad options) and
benchmarks/bench_image.py's dev mode (the test split is never read) and recipe handling, on tiny fakes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.adapters.image import ImageAdapter
from anycl.adapters.image_cnn import small_cnn
from anycl.errors import ConfigError

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


# ---- the encoder ------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [1, 2, 4])
def test_cnn_shapes_and_grid_pool_match_a_reference(grid):
    torch.manual_seed(0)
    net = small_cnn(width=4, grid=grid, in_channels=1).eval()
    assert net.embedding_dim == 16 * grid * grid
    x = torch.randn(3, 1, 28, 28)
    out = net(x)
    assert out.shape == (3, 16 * grid * grid)
    with torch.no_grad():
        maps = net[:-2](x)  # the last conv stage's (B, 4·width, 7, 7) feature maps
    assert maps.shape == (3, 16, 7, 7)
    if grid == 1:
        ref = maps.mean((2, 3))
    else:  # PyTorch's adaptive windows: cell i spans floor(i·7/g) .. ceil((i+1)·7/g)
        cells = []
        for c in range(16):
            for i in range(grid):
                for j in range(grid):
                    r0, r1 = (i * 7) // grid, -((-(i + 1) * 7) // grid)
                    c0, c1 = (j * 7) // grid, -((-(j + 1) * 7) // grid)
                    cells.append(maps[:, c, r0:r1, c0:c1].mean((1, 2)))
        ref = torch.stack(cells, 1)
    assert torch.allclose(out, ref, atol=1e-6)


def test_cnn_grid_keeps_where_things_are():
    """The same small square at two places (a shift by 8 px, a multiple of the two 2× pools, with every
    receptive field that sees it inside the image; zero background stays zero through bias-free convs and
    fresh BatchNorm): the global pool
    (grid 1) gives the same embedding for both, the 2×2 grid does not."""
    torch.manual_seed(0)
    a = torch.zeros(1, 1, 28, 28)
    a[..., 8:10, 8:10] = 1.0
    b = torch.roll(a, 8, dims=3)  # the square at columns 16:18
    g1 = small_cnn(width=4, grid=1, in_channels=1).eval()
    assert torch.allclose(g1(a), g1(b), atol=1e-5)
    g2 = small_cnn(width=4, grid=2, in_channels=1).eval()
    assert not torch.allclose(g2(a), g2(b), atol=1e-3)


def test_cnn_through_the_adapter_defaults_and_errors():
    grey = ImageAdapter(preset="small", size=28, mode="L")
    net = grey.default_encoder(arch="cnn")
    assert net.anycl_spec == {"arch": "cnn", "width": 32, "grid": 4, "in_channels": 1}
    assert net.embedding_dim == 2048
    assert grey.default_encoder(arch="resnet10", width=8).embedding_dim == 64  # ResNets unchanged
    with pytest.raises(ConfigError, match="width"):
        grey.default_encoder(arch="cnn", width=0)
    with pytest.raises(ConfigError, match="grid"):
        grey.default_encoder(arch="cnn", grid=0)
    with pytest.raises(ConfigError, match="grid"):
        grey.default_encoder(arch="cnn", grid=1.5)
    with pytest.raises(ConfigError, match="grid is an option of the 'cnn'"):
        grey.default_encoder(arch="resnet18", grid=2)
    with pytest.raises(ConfigError, match="small_stem"):
        grey.default_encoder(arch="cnn", small_stem=True)
    with pytest.raises(ConfigError, match="channel"):
        grey.default_encoder(arch="cnn", in_channels=3)
    with pytest.raises(ConfigError, match="cnn"):
        grey.default_encoder(arch="vgg")


def test_default_encoder_is_the_cnn_for_the_small_preset_only():
    small = ImageAdapter(preset="small", size=28, mode="L").default_encoder()
    assert small.anycl_spec["arch"] == "cnn" and small.embedding_dim == 2048
    assert ImageAdapter(preset="small").default_encoder(width=8).anycl_spec == {
        "arch": "cnn",
        "width": 8,
        "grid": 4,
        "in_channels": 3,
    }
    # a ResNet option (small_stem) or a named arch still gives a ResNet; the 224 px preset keeps ResNet-18
    stem = ImageAdapter(preset="small").default_encoder(small_stem=False, width=8)
    assert stem.anycl_spec == {"arch": "resnet18", "small_stem": False, "width": 8, "in_channels": 3}
    big = ImageAdapter().default_encoder(width=8)
    assert big.anycl_spec == {"arch": "resnet18", "small_stem": False, "width": 8, "in_channels": 3}


def test_cnn_fit_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (20, 20), dtype=np.uint8) for _ in range(16)]
    model = anycl.fit(
        imgs,
        modality="image",
        adapter_options={"preset": "small", "size": 16, "mode": "L"},
        encoder_options={"arch": "cnn", "width": 4, "grid": 2},
        batch_size=8,
        epochs=1,
        progress=False,
        seed=1,
    )
    e = model.encode(imgs[:3])
    assert e.shape == (3, 64)
    model.save(tmp_path / "m")
    loaded = anycl.load(tmp_path / "m")
    assert loaded.towers["image"].encoder.anycl_spec == {"arch": "cnn", "width": 4, "grid": 2, "in_channels": 1}
    assert torch.allclose(loaded.encode(imgs[:3]), e, atol=1e-5)


# ---- benchmarks/bench_image.py -------------------------------------------------------------------------
@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_image

    return bench_image


def fake_reader(calls):
    """A tiny stand-in for Fashion-MNIST: 60 'training' images (label = brightness class) that refuses
    to give the test split, recording each split asked for."""

    def read(split):
        calls.append(split)
        if split != "train":
            raise AssertionError("dev mode read the test split")
        rng = np.random.default_rng(0)
        y = np.arange(60) % 3
        x = (rng.integers(0, 40, (60, 28, 28)) + 80 * y[:, None, None]).astype(np.uint8)
        return x, y

    return read


def test_dev_split_is_disjoint_and_never_reads_test(bench):
    calls = []
    xtr, ytr, xdev, ydev = bench.load_fmnist(40, 20, dev=True, reader=fake_reader(calls))
    assert calls == ["train"] and len(xtr) == 40 and len(xdev) == 20
    keys = {x.tobytes() for x in xtr}
    assert not keys & {x.tobytes() for x in xdev}  # no image both trained on and scored
    with pytest.raises(ValueError, match="training images"):
        bench.load_fmnist(50, 20, dev=True, reader=fake_reader([]))


def test_dev_run_writes_json_lines_and_no_markdown(bench, tmp_path, monkeypatch):
    calls = []
    jsonl = tmp_path / "dev.jsonl"
    monkeypatch.setattr(bench, "RESULTS", tmp_path)  # a markdown file, if written, would land here
    argv = ["--dev", "--train", "40", "--test", "20", "--epochs", "1", "--batch-size", "8", "--arch", "cnn"]
    argv += ["--width", "4", "--seeds", "0", "--no-warmup", "--jsonl", str(jsonl), "--sides", "raw", "random", "mild"]
    argv += ["--recipe", 'mild={"adapter": {"scale": [0.5, 1]}, "loss": "vicreg"}']
    rows = bench.main(argv, reader=fake_reader(calls))
    assert set(calls) == {"train"}
    assert list(tmp_path.glob("*.md")) == []
    lines = [json.loads(s) for s in jsonl.read_text().splitlines()]
    assert [r["side"] for r in lines] == ["raw", "random", "mild"]
    assert all(r["split"] == "dev" and r["train"] == 40 and r["eval"] == 20 for r in lines)
    assert lines[2]["recipe"] == {"adapter": {"scale": [0.5, 1]}, "loss": "vicreg"} and lines[2]["train_s"] > 0
    # the raw-pixel floor is an independent computation: kNN on the flattened pixels
    xtr, ytr, xdev, ydev = bench.load_fmnist(40, 20, dev=True, reader=fake_reader([]))
    from anycl.evaluation import knn_accuracy

    tr = F.normalize(torch.tensor(np.stack(xtr), dtype=torch.float32).flatten(1), dim=1)
    te = F.normalize(torch.tensor(np.stack(xdev), dtype=torch.float32).flatten(1), dim=1)
    assert rows["raw"][0]["knn"] == pytest.approx(knn_accuracy(tr, ytr, te, ydev, k=20, temperature=0.1))


def test_recipes_map_to_fit_arguments_and_typos_raise(bench):
    sys.path.insert(0, str(BENCH))
    from image_sides import fit_kwargs

    cfg = bench.train_config(64, 2, 0)
    plain = fit_kwargs(cfg, {})
    assert plain["loss_options"] == {"symmetric": True} and plain["temperature"] == 0.2 and "loss" not in plain
    vic = fit_kwargs(cfg, {"loss": "vicreg", "adapter": {"flip_p": 0.0}, "lr": 1e-3})
    assert vic["loss"] == "vicreg" and "temperature" not in vic and "loss_options" not in vic
    assert vic["adapter_options"] == {"preset": "small", "size": 28, "mode": "L", "flip_p": 0.0}
    assert vic["lr"] == 1e-3 and vic["epochs"] == 2  # the budget stays the shared one
    mv = fit_kwargs(cfg, {"views": 2, "local_views": 2})
    assert mv["views"] == 2 and "loss_options" not in mv and "temperature" not in mv
    with pytest.raises(ConfigError, match="epochs"):
        fit_kwargs(cfg, {"epochs": 9})
    lib = fit_kwargs(cfg, {"defaults": True})  # anycl's own defaults: nothing but data options and the budget
    assert lib == {"adapter_options": cfg["adapter"], "epochs": 2, "progress": False, "num_workers": 0}
    with pytest.raises(ConfigError, match="defaults"):
        fit_kwargs(cfg, {"defaults": True, "lr": 1e-3})
    with pytest.raises(SystemExit):
        bench.parse_recipes(["raw={}"])

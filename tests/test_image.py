"""Image adapter: decoding every input form, augmentation reproducibility, batched colour ops vs
torchvision, encoders, bad input, and a tiny end-to-end fit/encode/save/load."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

import anycl
from anycl.adapters import image_batched as B
from anycl.adapters.image import ImageAdapter
from anycl.adapters.image_augment import make_config
from anycl.adapters.image_encoders import resnet, wrap_encoder
from anycl.errors import ConfigError, DataError


def rgb(seed=0, h=20, w=24):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def small():
    return ImageAdapter(preset="small", size=16)


# ---- decoding ------------------------------------------------------------------------------------
def test_every_input_form_decodes_to_the_same_pixels(tmp_path, small):
    arr = rgb()
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    expected = torch.from_numpy(arr).permute(2, 0, 1)
    forms = [
        str(path),
        path,
        path.read_bytes(),
        Image.fromarray(arr),
        arr,
        expected.clone(),
        expected.float() / 255,
        {"bytes": path.read_bytes(), "path": None},
        {"bytes": None, "path": str(path)},
    ]
    for f in forms:
        out = small.load(f)
        assert out.dtype == torch.uint8 and out.shape == (3, 20, 24)
        assert torch.equal(out, expected), type(f)


def test_grey_palette_and_rgba_convert_consistently(small):
    grey = np.full((8, 8), 100, np.uint8)
    assert torch.equal(small.load(grey), torch.full((3, 8, 8), 100, dtype=torch.uint8))
    assert torch.equal(small.load(Image.fromarray(grey)), small.load(grey))
    pal = Image.fromarray(rgb(h=8, w=8)).convert("P", palette=Image.ADAPTIVE, colors=4)
    assert torch.equal(small.load(pal), small.load(np.asarray(pal.convert("RGB"))))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent → white background
    out = small.load(rgba)
    assert out[:, 0, 0].tolist() == [200, 0, 0] and out[:, 3, 0].tolist() == [255, 255, 255]
    assert torch.equal(out, small.load(Image.fromarray(rgba, "RGBA")))
    assert ImageAdapter(preset="small", mode="L").load(rgb()).shape == (1, 20, 24)


def test_mixed_sizes_make_one_batch(small):
    g = torch.Generator().manual_seed(0)
    views = [small.augment(small.load(rgb(i, 10 + 7 * i, 30 - 3 * i)), g) for i in range(3)]
    batch = small.collate(views)
    assert batch.shape == (3, 3, 16, 16)
    assert small.collate([small.eval_view(small.load(rgb(i, 10 + 7 * i, 30))) for i in range(3)]).shape == (
        3,
        3,
        16,
        16,
    )


# ---- bad input -------------------------------------------------------------------------------------
def test_corrupt_and_truncated_files_name_the_file(tmp_path, small):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="bad.jpg"):
        small.load(str(bad))
    buf = io.BytesIO()
    Image.fromarray(rgb(h=32, w=32)).save(buf, format="PNG")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match="trunc.png.*(truncated|corrupt)"):
        small.load(str(trunc))
    with pytest.raises(DataError, match="does not exist"):
        small.load(str(tmp_path / "missing.png"))


def test_zero_size_wrong_dims_and_channels(small):
    with pytest.raises(DataError, match="empty"):
        small.load(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(DataError, match="empty"):
        small.load(Image.new("RGB", (0, 4)))
    with pytest.raises(DataError, match=r"4 dimensions.*list"):
        small.load(torch.zeros(2, 3, 8, 8))
    with pytest.raises(DataError, match="5 channels"):
        small.load(torch.zeros(5, 8, 8))
    with pytest.raises(DataError, match="7 channels"):
        small.load(np.zeros((8, 8, 7), np.uint8))
    with pytest.raises(DataError, match="row 3"):
        small.validate(12.5, "row 3 'anchor'")


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds no files"):
        anycl.fit(str(tmp_path), modality="image")


def test_small_images_are_upsampled_and_said_once(caplog):
    a = ImageAdapter(preset="small", size=32)
    with caplog.at_level(logging.WARNING, logger="anycl"):
        for i in range(3):
            assert a.eval_view(a.load(rgb(i, 12, 12))).shape == (3, 32, 32)
    msgs = [r for r in caplog.records if "upsampled" in r.getMessage()]
    assert len(msgs) == 1 and "12x12" in msgs[0].getMessage()


# ---- augmentation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("augment_on", ["item", "batch"])
def test_augmentation_reproducible_under_a_seed_and_leaves_global_rng_alone(augment_on):
    a = ImageAdapter(preset="small", size=16, augment_on=augment_on, solarize_p=0.3)
    img = a.load(rgb())

    def views(seed):
        g = torch.Generator().manual_seed(seed)
        v = a.collate([a.augment(img, g) for _ in range(6)])
        return a.prepare(v, train=True, generator=g)

    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = views(7)
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched by augment
    torch.manual_seed(999)  # global state must not matter
    assert torch.equal(first, views(7))
    assert not torch.equal(first, views(8))
    assert not torch.equal(first[0], first[1])  # views differ from one another


def test_eval_view_is_deterministic_centre_crop():
    a = ImageAdapter(preset="simclr", size=8)  # resize short side to round(8*256/224)=9, crop 8
    img = a.load(rgb(h=18, w=36))
    assert torch.equal(a.eval_view(img), a.eval_view(img))
    assert a.eval_view(img).shape == (3, 8, 8)
    x = a.collate([a.eval_view(img)])
    assert torch.equal(a.prepare(x, train=False), a.prepare(x, train=False, generator=torch.Generator().manual_seed(1)))


def test_presets_and_option_errors():
    assert make_config("small").blur_p == 0 and make_config("simclr").size == 224
    with pytest.raises(ConfigError, match="preset"):
        ImageAdapter(preset="huge")
    with pytest.raises(ConfigError, match="unknown image adapter option"):
        ImageAdapter(sise=3)
    with pytest.raises(ConfigError, match="probability"):
        ImageAdapter(blur_p=2)


def test_multi_crop_views():
    a = ImageAdapter(preset="small", size=16, local_crops=3, local_size=8, augment_on="item")
    views = a.multi_crop(a.load(rgb()), torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 3


# ---- batched colour ops vs torchvision's per-image functions -----------------------------------------
def test_batched_ops_match_torchvision_functional():
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    for f in (0.6, 1.3):
        fv = torch.full((3,), f)
        ref = torch.stack([TF.adjust_brightness(i, f) for i in x])
        assert torch.allclose(x.mul(f).clamp(0, 1), ref, atol=1e-6)
        ref = torch.stack([TF.adjust_contrast(i, f) for i in x])
        assert torch.allclose(
            B._blend(x, B.grayscale(x).mean((1, 2, 3), keepdim=True), fv.view(-1, 1, 1, 1)), ref, atol=1e-5
        )
        ref = torch.stack([TF.adjust_saturation(i, f) for i in x])
        assert torch.allclose(B._blend(x, B.grayscale(x), fv.view(-1, 1, 1, 1)), ref, atol=1e-5)
    shift = torch.tensor([-0.3, 0.05, 0.45])
    ref = torch.stack([TF.adjust_hue(i, float(s)) for i, s in zip(x, shift)])
    assert torch.allclose(B.adjust_hue(x, shift), ref, atol=1e-4)
    sig = torch.tensor([0.5, 1.0, 2.0])
    ref = torch.stack([TF.gaussian_blur(i, [5, 5], [float(s), float(s)]) for i, s in zip(x, sig)])
    assert torch.allclose(B.gaussian_blur(x, 5, sig), ref, atol=1e-5)


def test_batched_jitter_applies_with_its_probability():
    cfg = make_config("small", jitter_p=0.5, grayscale_p=0.0)
    x = torch.rand(400, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = B.photometric(x, cfg, torch.Generator().manual_seed(1))
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.4 < changed.float().mean() < 0.6


# ---- encoders ---------------------------------------------------------------------------------------
def test_resnet_variants_and_small_stem():
    net = resnet("resnet18", small_stem=True, width=8)
    assert net.embedding_dim == 64 and net(torch.zeros(2, 3, 16, 16)).shape == (2, 64)
    assert isinstance(net.maxpool, torch.nn.Identity) and net.conv1.kernel_size == (3, 3)
    big = resnet("resnet50", small_stem=False, width=4, in_channels=1)
    assert big.embedding_dim == 128 and big.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 128)
    with pytest.raises(ConfigError, match="resnet18"):
        resnet("vgg")


def test_wrap_torchvision_timm_style_and_plain_modules():
    from torchvision.models import resnet18

    tv = wrap_encoder(resnet18(weights=None, num_classes=10))
    assert tv.embedding_dim == 512 and tv(torch.zeros(2, 3, 32, 32)).shape == (2, 512)

    class TimmLike(torch.nn.Module):
        num_features = 6

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3)

        def forward_features(self, x):
            return self.conv(x)

        def forward_head(self, x, pre_logits=False):
            return x.mean((2, 3))

    t = wrap_encoder(TimmLike())
    assert t.embedding_dim == 6 and t(torch.zeros(2, 3, 8, 8)).shape == (2, 6)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    assert ImageAdapter(preset="small", size=16).embedding_dim(plain) == 5  # measured with a probe image


def test_wrap_hf_vision_model():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        image_size=16, patch_size=8, hidden_size=12, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    enc = wrap_encoder(transformers.ViTModel(cfg))
    assert enc.embedding_dim == 12 and enc(torch.zeros(2, 3, 16, 16)).shape == (2, 12)


# ---- end to end ---------------------------------------------------------------------------------------
def _images(n=24, size=20):
    """``n`` RGB arrays of two classes (alternating): a bright square on dark, or a dark one on bright."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # two "classes": bright squares on dark or dark on bright
        img = np.full((size, size, 3), 30 if i % 2 else 220, np.uint8)
        y, x = rng.integers(0, size - 8, 2)
        img[y : y + 8, x : x + 8] = 220 if i % 2 else 30
        out.append(img)
    return out


FAST = dict(
    adapter_options={"preset": "small", "size": 16},
    encoder_options={"arch": "resnet10", "width": 8},
    batch_size=8,
    epochs=1,
    progress=False,
    seed=3,
)


def test_knn_temperature_votes_match_hand_computation():
    from anycl.evaluation import knn_accuracy

    train = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]]), dim=1)
    test = torch.tensor([[1.0, 0.0]])
    # neighbours: a (cos 1.0, label A), b (0.8, B), c (0.6, B). Majority (k=3): B.
    assert knn_accuracy(train, ["A", "B", "B"], test, ["B"], k=3) == 1.0
    # weighted, T=0.1: A gets e^10 = 22026, B gets e^8 + e^6 = 3384 → A
    assert knn_accuracy(train, ["A", "B", "B"], test, ["A"], k=3, temperature=0.1) == 1.0
    # T=10: A e^0.1=1.105, B e^0.08+e^0.06=2.145 → B
    assert knn_accuracy(train, ["A", "B", "B"], test, ["B"], k=3, temperature=10.0) == 1.0


def test_fit_encode_deterministic_save_load(tmp_path):
    from anycl.evaluation import ProbeEvaluator

    imgs = _images()
    labels = [i % 2 for i in range(len(imgs))]
    probe = ProbeEvaluator(imgs[:16], labels[:16], imgs[16:], labels[16:], k=3, temperature=0.1)
    model = anycl.fit(imgs, modality="image", eval_dataset=probe, **FAST)
    metrics = model.trainer.eval_history[-1]
    assert 0.0 <= metrics["knn@3_accuracy"] <= 1.0 and 0.0 <= metrics["linear_probe_accuracy"] <= 1.0
    e1, e2 = model.encode(imgs[:5]), model.encode(imgs[:5])
    assert e1.shape == (5, 64) and torch.equal(e1, e2)
    again = anycl.fit(imgs, modality="image", **FAST)
    assert torch.allclose(again.encode(imgs[:5]), e1, atol=1e-5)  # same seed → same model
    model.save(tmp_path / "m")
    loaded = anycl.load(tmp_path / "m")
    assert torch.allclose(loaded.encode(imgs[:5]), e1, atol=1e-5)


def test_fit_skips_bad_files_when_asked(tmp_path):
    for i, img in enumerate(_images(12)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="broken.png"):
        anycl.fit([str(tmp_path / "broken.png"), str(tmp_path / "0.png")], modality="image", **FAST)
    every = {"sampler_options": {"drop_last": False}}  # 13 images, batches of 8: the short batch is read too
    model = anycl.fit(str(tmp_path), modality="image", on_bad_item="skip", **FAST, **every)  # a folder of images
    assert len(model.trainer.rows) == 12  # its row dropped before training (tests/test_image_defaults.py)
    assert model.trainer.builder.skipped == 0
    assert model.encode([str(tmp_path / "0.png")]).shape == (1, 64)

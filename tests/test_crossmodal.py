"""Two towers of different modalities through the same fit: zero-shot, retrieval both ways, freezing."""

import pytest
import torch

import anycl
from anycl.adapters import Adapter
from anycl.errors import ConfigError
from anycl.evaluation.crossmodal import ZeroShotClassifier, cross_modal_retrieval, freeze, recall_at_k

COLOURS = ["red", "green", "blue", "yellow"]


@anycl.adapters.register("test_signal")
class Signal(Adapter):
    """A toy modality: 8-number vectors (a noisy one-hot code of a colour)."""

    modality = "test_signal"
    fit_defaults = {"batch_size": 8, "lr": 3e-3, "head": None}

    def collate(self, items):
        return torch.tensor(items, dtype=torch.float32)

    def default_encoder(self, width=16):
        enc = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, width))
        enc.anycl_spec = {"width": width}
        enc.embedding_dim = width
        return enc


def signal(c, i):
    g = torch.Generator().manual_seed(100 * c + i)
    v = 0.1 * torch.randn(8, generator=g)
    v[c] += 1.0
    return v.tolist()


def pairs(n_per_class=8):
    return [
        {"anchor": signal(c, i), "positive": f"the colour {COLOURS[c]}"}
        for i in range(n_per_class)
        for c in range(len(COLOURS))
    ]


def test_two_tower_fit_zero_shot_and_retrieval(minilm_path, tmp_path):
    train = pairs()
    model = anycl.fit(
        train,
        modality={"anchor": "test_signal", "positive": "text"},
        model=minilm_path,
        freeze={"text": "encoder"},
        epochs=15,
        batch_size=4,
        lr=1e-2,
        seed=0,
        progress=False,
        eval_dataset=[{"anchor": signal(c, 50), "positive": f"the colour {COLOURS[c]}"} for c in range(4)],
    )
    assert sorted(model.modalities) == ["test_signal", "text"]
    assert model.tower("anchor").encode_with_head and model.tower("positive").head is not None
    # frozen text encoder did not move; its head did
    base = anycl.api.build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    st_a = model.towers["text"].encoder.state_dict()
    st_b = base.towers["text"].encoder.state_dict()
    assert all(torch.equal(st_a[k], st_b[k]) for k in st_a)
    assert "test_signal_to_text_recall@1" in model.trainer.eval_history[-1]
    # both sides embed into one space of the same width
    assert (
        model.encode(["the colour red"], modality="text").shape
        == model.encode([signal(0, 0)], modality="test_signal").shape
    )
    held_out = [signal(c, 99) for c in range(4)] * 2
    labels = COLOURS * 2
    clf = ZeroShotClassifier(model, COLOURS, templates=["the colour {}"], text_modality="text")
    acc = clf.accuracy(held_out, labels)
    assert acc >= 0.75, acc  # chance is 0.25
    r = cross_modal_retrieval(model, [signal(c, 77) for c in range(4)], [f"the colour {c}" for c in COLOURS])
    assert set(r) == {f"{a}_recall@{k}" for a in ("test_signal_to_text", "text_to_test_signal") for k in (1, 5, 10)}
    assert r["test_signal_to_text_recall@1"] >= 0.75
    model.save(tmp_path / "m")
    loaded = anycl.load(tmp_path / "m")
    assert torch.equal(loaded.encode(held_out, modality="test_signal"), model.encode(held_out, modality="test_signal"))


def test_recall_at_k_reference():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.0, 0.2, 0.1]])
    # row 0: true at rank 0; row 1: one higher (0.8) → rank 1; row 2: one higher (0.2) → rank 1
    assert recall_at_k(sim, [1, 2]) == {1: pytest.approx(1 / 3), 2: pytest.approx(1.0)}


def test_crossmodal_bad_input(minilm_path):
    with pytest.raises(ConfigError, match="no adapter for modality 'smell'"):
        anycl.fit(pairs(), modality={"anchor": "smell", "positive": "text"})
    with pytest.raises(ConfigError, match="sides are"):
        anycl.fit(pairs(), modality={"query": "text"})
    with pytest.raises(ConfigError, match="different widths .* pass head=<width>"):
        anycl.fit(pairs(), modality={"anchor": "test_signal", "positive": "text"}, model=minilm_path, head=None)
    with pytest.raises(anycl.DataError, match=r"row 1, column 'positive' is missing"):
        anycl.fit(
            [{"anchor": signal(0, 0), "positive": "x"}, {"anchor": signal(1, 0), "positive": None}],
            modality={"anchor": "test_signal", "positive": "text"},
            model=minilm_path,
        )
    model = anycl.api.build_model({"anchor": "test_signal", "positive": "text", "negative": "text"}, model=minilm_path)
    with pytest.raises(ConfigError, match="freeze names 'image'"):
        freeze(model, "image")
    with pytest.raises(ConfigError, match="template 'colour' has no"):
        ZeroShotClassifier(model, COLOURS, templates="colour")
    with pytest.raises(anycl.DataError, match="aligned pairs"):
        cross_modal_retrieval(model, [signal(0, 0)], ["a", "b"])


# -- the real adapters: image–text and audio–text through the same fit (tiny data made here) ------------------
def bars(kind: int, i: int):
    """A 28×28 grey image: a bright horizontal (kind 0) or vertical (kind 1) bar, with noise."""
    import numpy as np

    rng = np.random.default_rng(i)
    img = rng.integers(0, 40, (28, 28)).astype("uint8")
    pos = 4 + (i % 5) * 4
    if kind == 0:
        img[pos : pos + 4, :] = 230
    else:
        img[:, pos : pos + 4] = 230
    return img


def tone(kind: int, i: int, sr: int = 16000):
    """Half a second of a low (kind 0) or high (kind 1) sine tone, as a Hugging Face audio dict."""
    import numpy as np

    t = np.arange(sr // 2) / sr
    freq = (220.0 if kind == 0 else 3520.0) * (1 + 0.02 * i)
    return {"array": (0.5 * np.sin(2 * np.pi * freq * t)).astype("float32"), "sampling_rate": sr}


@pytest.mark.parametrize(
    "modality, make, names, options",
    [
        (
            "image",
            bars,
            ["horizontal bar", "vertical bar"],
            {
                "adapter_options": {"image": {"preset": "small"}},
                "encoder_options": {"image": {"arch": "resnet18", "width": 8}},
            },
        ),
        ("audio", tone, ["low hum", "high whistle"], {"adapter_options": {"audio": {"clip_seconds": 0.5}}}),
    ],
)
def test_image_text_and_audio_text_train_through_fit(modality, make, names, options, minilm_path):
    train = [{"anchor": make(k, i), "positive": f"a {names[k]}"} for i in range(8) for k in range(2)]
    model = anycl.fit(
        train,
        modality={"anchor": modality, "positive": "text"},
        model=minilm_path,
        freeze={"text": "encoder"},
        max_steps=3,
        batch_size=8,
        seed=0,
        progress=False,
        **options,
    )
    assert sorted(model.modalities) == sorted([modality, "text"])
    items = [make(k, 50) for k in range(2)]
    a = model.encode(items, modality=modality)
    t = model.encode([f"a {n}" for n in names], modality="text")
    assert a.shape == t.shape and a.shape[0] == 2  # one shared space
    assert torch.isfinite(a).all() and torch.allclose(a.norm(dim=1), torch.ones(2))
    # CLIP's default: symmetric InfoNCE whose temperature starts at 0.07 and is learnt
    loss = model.trainer.loss
    assert loss.symmetric and loss.tau.learnable and loss.tau.value != pytest.approx(0.07, abs=1e-7)
    clf = ZeroShotClassifier(model, names, templates="a {}", text_modality="text")
    assert clf.scores(items).shape == (2, 2)
    assert model.trainer.global_step == 3 and all(h["loss"] > 0 for h in model.trainer.history)

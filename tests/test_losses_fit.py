"""Every registered loss trains through ``anycl.fit`` (tiny data, tiny encoders, two steps), the collapse
watch fires on a collapsing run and stays silent on a healthy one, a user's loss registered with the
decorator works with fit and the memory queue, and bad inputs give clear errors."""

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import anycl
from anycl.adapters import Adapter
from anycl.errors import ConfigError


@pytest.fixture(autouse=True)
def _one_thread():
    """These runs use tiny tensors, where intra-op threads cost more than they give (on a busy machine,
    40x more); one thread keeps the smoke matrix fast and does not change what is tested."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# every built-in objective with the options that make it fit a 2-step smoke run
SMOKE_LOSSES = {
    "infonce": {"learn_temperature": True},
    "simclr": {},
    "dcl": {},
    "dclw": {},
    "debiased": {"tau_plus": 0.1, "hardness_weight": 1.0},
    "supcon": {},
    "triplet": {"mining": "semi_hard"},
    "siglip": {},
    "byol": {},
    "simsiam": {},
    "vicreg": {},
    "barlow_twins": {},
    "moco": {"queue_size": 16},
    "multiview_infonce": {},  # pairwise here; several views in tests/test_views.py
    "dino": {"out_dim": 16},
    "nnclr": {"queue_size": 16},
    "mega_batch_margin": {},
}
# losses reading labels as numbers (0/1 pairs, NLI classes) train on such data in tests/test_losses_st_parity.py
NUMERIC_LABELS = ("contrastive", "online_contrastive", "softmax")
# losses training a second copy of the model train on one column of sentences in tests/test_contrastive_tension.py
SECOND_TOWER = ("contrastive_tension", "contrastive_tension_in_batch")


def test_every_registered_family_is_in_the_smoke_matrix():
    # losses reading score columns or a teacher train on such data in tests/test_losses_graded.py; distill (a
    # teacher's features of the views) in tests/test_distill_views.py
    built_in = {
        c
        for c in map(anycl.losses.LOSSES.lookup, anycl.losses.names())
        if isinstance(c, type)
        and c.__module__.startswith("anycl.losses")
        and not getattr(c, "score_columns", ())
        and not getattr(c, "needs_teacher", False)
        and not getattr(c, "needs_view_teacher", False)
    }
    assert built_in <= {anycl.losses.LOSSES.lookup(n) for n in (*SMOKE_LOSSES, *NUMERIC_LABELS, *SECOND_TOWER)}


# -- text -------------------------------------------------------------------------------------------------
def labelled_text():
    topics = ["cats", "rivers", "engines", "bread"]
    return [
        {"anchor": f"a question about {t}, number {i}", "positive": f"an answer on {t} ({i})", "label": t}
        for i in range(4)
        for t in topics
    ]


@pytest.mark.parametrize("name", list(SMOKE_LOSSES))
def test_fit_trains_text_with_every_loss(name, fit_text_two_steps):
    model, steps = fit_text_two_steps(labelled_text(), name, SMOKE_LOSSES[name])
    assert model.trainer.global_step == 2 and len(steps) == 2
    assert all(torch.isfinite(torch.tensor(s)) for s in steps)
    assert model.encode(["a question about cats"]).shape == (1, 384)


# -- a toy modality for collapse and extensibility tests --------------------------------------------------
class Vectors(Adapter):
    """Items are 8-d points; a view adds small noise."""

    modality = "losstest_vectors"
    fit_defaults = {"batch_size": 16, "lr": 1e-2, "head": None}

    def collate(self, items):
        return torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in items])

    def augment(self, item, generator):
        return torch.as_tensor(item) + 0.05 * torch.randn(8, generator=generator)

    def default_encoder(self):
        enc = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 16))
        enc.anycl_spec = {}
        enc.embedding_dim = 16
        return enc


if "losstest_vectors" not in anycl.adapters.names():
    anycl.adapters.register("losstest_vectors")(Vectors)


def points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [row for row in torch.randn(n, 8, generator=g)]


def pull_everything_together(anchor, positive, negative=None, labels=None):
    """Every anchor attracted to every positive: the textbook route to a collapsed encoder."""
    return (1 - F.cosine_similarity(anchor.unsqueeze(1), positive.unsqueeze(0), dim=-1)).mean()


pull_everything_together.negative_free = True
pull_everything_together.in_batch_negatives = False


def test_collapse_watch_fires_on_a_collapsing_run(caplog):
    caplog.set_level(logging.WARNING, logger="anycl")
    model = anycl.fit(
        points(),
        modality="losstest_vectors",
        loss=pull_everything_together,
        epochs=15,
        lr=3e-2,
        progress=False,
        collapse_watch={"every": 1},
    )
    watch = [cb for cb in model.trainer.callbacks if isinstance(cb, anycl.training.collapse.CollapseWatch)][0]
    assert watch.fired_at is not None
    assert f"embedding collapse at step {watch.fired_at}" in caplog.text
    assert watch.history[-1]["spread"] < 0.1 < watch.history[0]["spread"]
    assert watch.history[-1]["uniformity"] > watch.history[0]["uniformity"]  # toward 0: collapsed


def test_collapse_watch_stays_silent_on_a_healthy_run(caplog):
    caplog.set_level(logging.WARNING, logger="anycl")
    model = anycl.fit(
        points(),
        modality="losstest_vectors",
        loss="infonce",
        temperature=0.2,
        epochs=15,
        lr=3e-2,
        progress=False,
        collapse_watch={"every": 1},
    )
    watch = [cb for cb in model.trainer.callbacks if isinstance(cb, anycl.training.collapse.CollapseWatch)][0]
    assert watch.fired_at is None and "collapse" not in caplog.text
    assert len(watch.history) == model.trainer.global_step
    assert {"std", "spread", "alignment", "uniformity"} <= set(watch.history[-1])
    # off on request
    quiet = anycl.fit(points(16), modality="losstest_vectors", max_steps=1, progress=False, collapse_watch=False)
    assert not any(isinstance(cb, anycl.training.collapse.CollapseWatch) for cb in quiet.trainer.callbacks)


# -- a user's loss ----------------------------------------------------------------------------------------
def test_user_loss_registered_with_the_decorator_works_with_fit_and_the_queue():
    calls = []

    @anycl.losses.register("losstest_cosine_margin", override=True)
    def cosine_margin(anchor, positive, negative=None, labels=None, margin=0.3):
        a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
        pos = (a * p).sum(-1, keepdim=True)
        neg = a @ p.T
        neg = neg.masked_fill(torch.eye(len(a), dtype=torch.bool), -2.0)
        if negative is not None:
            neg = torch.cat([neg, (a.unsqueeze(1) * F.normalize(negative, dim=-1)).sum(-1)], dim=1)
        calls.append(None if negative is None else tuple(negative.shape))
        return F.relu(neg - pos + margin).mean()

    model = anycl.fit(
        points(32),
        modality="losstest_vectors",
        loss="losstest_cosine_margin",
        loss_options={"margin": 0.2},
        max_steps=3,
        progress=False,
    )
    assert model.trainer.global_step == 3 and calls == [None] * 3
    calls.clear()
    anycl.fit(
        points(32),
        modality="losstest_vectors",
        loss="moco",
        batch_size=8,
        max_steps=3,
        progress=False,
        loss_options={"base": "losstest_cosine_margin", "queue_size": 16, "margin": 0.2},
    )
    assert calls == [None, (8, 8, 16), (8, 16, 16)]  # the queue's keys, never the batch's own


# -- bad input through fit --------------------------------------------------------------------------------
def test_fit_refuses_single_class_labels_for_supcon_and_negatives_for_negative_free_losses():
    rows = [{"anchor": p, "label": "only"} for p in points(8)]
    with pytest.raises(ConfigError, match="single class"):
        anycl.fit(rows, modality="losstest_vectors", loss="supcon", progress=False)
    with pytest.raises(ConfigError, match="needs a 'label' column"):
        anycl.fit(points(8), modality="losstest_vectors", loss="supcon", progress=False)
    pts = points(8)
    with_neg = [{"anchor": pts[i], "positive": pts[i] + 0.01, "negative": pts[(i + 1) % 8]} for i in range(8)]
    for name in ("byol", "vicreg"):
        with pytest.raises(ConfigError, match="negative-free and cannot use the hard-negative"):
            anycl.fit(with_neg, modality="losstest_vectors", loss=name, progress=False)
    with pytest.raises(ConfigError, match="fewer than the batch"):
        anycl.fit(
            points(16),
            modality="losstest_vectors",
            loss="moco",
            batch_size=8,
            progress=False,
            loss_options={"queue_size": 4},
        )


# -- the other modalities: tiny inputs, tiny encoders ------------------------------------------------------
def audio_case():
    import numpy as np

    sr = 16000
    t = np.arange(int(0.3 * sr)) / sr
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        rows.append(
            {
                "anchor": {
                    "array": (0.5 * np.sin(2 * np.pi * (150 + 40 * i) * t)).astype(np.float32),
                    "sampling_rate": sr,
                },
                "label": "tone",
            }
        )
        rows.append(
            {
                "anchor": {"array": (0.3 * rng.standard_normal(len(t))).astype(np.float32), "sampling_rate": sr},
                "label": "noise",
            }
        )
    options = dict(
        adapter_options={"clip_seconds": 0.1, "n_mels": 16},
        encoder_options={"channels": [4], "embedding_dim": 16},
        head=16,
    )
    return rows, options


def image_case():
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):  # two classes: a bright square on dark, a dark square on bright
        img = np.full((12, 12, 3), 30 if i % 2 else 220, np.uint8)
        y, x = rng.integers(0, 6, 2)
        img[y : y + 6, x : x + 6] = 220 if i % 2 else 30
        rows.append({"anchor": img, "label": i % 2})
    options = dict(
        adapter_options={"preset": "small", "size": 8}, encoder_options={"arch": "resnet10", "width": 4}, head=16
    )
    return rows, options


MODALITY_CASES = {"audio": audio_case, "image": image_case}


@pytest.mark.parametrize("name", list(SMOKE_LOSSES))
@pytest.mark.parametrize("modality", list(MODALITY_CASES))
def test_fit_trains_every_modality_with_every_loss(modality, name):
    if modality not in anycl.adapters.names():
        pytest.skip(f"no {modality} adapter registered")
    rows, options = MODALITY_CASES[modality]()
    model = anycl.fit(
        rows,
        modality=modality,
        loss=name,
        loss_options=SMOKE_LOSSES[name],
        batch_size=4,
        max_steps=2,
        progress=False,
        log_every=1,
        **options,
    )
    assert model.trainer.global_step == 2
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in model.trainer.history)
    assert model.encode([rows[0]["anchor"]]).shape[0] == 1

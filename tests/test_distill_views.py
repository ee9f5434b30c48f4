"""Distillation from a teacher on the student's views (fit(..., teacher=...), anycl.losses.distill_views,
anycl.model.distill_teacher, anycl.fitting.distill): the loss against its formula, the teacher frozen and fed the
student's views, the cache, the weight, save/load, a student that learns the teacher's features, and errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.data.batching import BatchBuilder
from anycl.data.column_spec import column_specs
from anycl.errors import ConfigError
from anycl.losses import InfoNCE, ViewDistill
from anycl.losses import get as get_loss
from anycl.model.contrastive import build_model
from anycl.model.distill_teacher import ViewTeacher, open_view_teacher

sys.path.insert(0, str(Path(__file__).parent))
from test_image import FAST, _images  # noqa: E402

IMAGE = {"anchor": "image", "positive": "image"}


def _teacher(size=16, width=4, seed=0):
    torch.manual_seed(seed)
    return build_model(
        IMAGE,
        adapter_options={"preset": "small", "size": size},
        encoder_options={"arch": "resnet10", "width": width},
        head=None,
    )


def _rows_forwarded(model, modality="image"):
    """Count the rows the teacher's encoder sees (a forward hook)."""
    seen = [0]
    model.tower(modality).encoder.register_forward_hook(lambda m, i, o: seen.__setitem__(0, seen[0] + len(i[0])))
    return seen


# ---- the loss -----------------------------------------------------------------------------------------------
def test_distill_loss_matches_its_formula_alone_and_with_a_contrastive_loss():
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    t = torch.randn(6, 2, 7, generator=g) * 3  # any scale: the term compares directions
    alone = get_loss("distill")
    alone.build_projection(5, 7)
    W, b = alone.projection.weight.detach(), alone.projection.bias.detach()
    want = 0.0
    for i in range(6):
        for v, s in enumerate((a[i], p[i])):
            want += 2 - 2 * F.cosine_similarity(W @ s + b, t[i, v], dim=0)
    assert torch.allclose(alone(a, p, teacher=t), want / 12, atol=1e-5)
    one_view = sum(2 - 2 * F.cosine_similarity(W @ a[i] + b, t[i, 0], dim=0) for i in range(6)) / 6
    assert torch.allclose(alone(a, p, teacher=t[:, :1]), one_view, atol=1e-5)  # cached pairs: the anchor only

    both = ViewDistill(InfoNCE(temperature=0.1), weight=0.5)
    both.projection = alone.projection
    out = both(a, p, teacher=t)
    contrastive = InfoNCE(temperature=0.1)(a, p)
    assert torch.allclose(out["loss"], contrastive + 0.5 * want / 12, atol=1e-5)
    assert torch.allclose(out["contrastive"], contrastive) and torch.allclose(out["distill"], want / 12, atol=1e-5)
    with pytest.raises(ConfigError, match="distill_weight must be > 0"):
        ViewDistill(InfoNCE(), weight=0)
    with pytest.raises(ValueError, match=r"teacher must be \(B, 1 or 2, D\)"):
        alone(a, p, teacher=t[:3])


# ---- the teacher ----------------------------------------------------------------------------------------------
def test_teacher_is_frozen_and_embeds_the_views_of_the_batch_as_its_encode_does():
    imgs = _images(8, size=16)
    teacher_model = _teacher()
    teacher = ViewTeacher(open_view_teacher(teacher_model, "image"), "image")
    assert teacher.dim == 32 and not teacher_model.training
    assert not any(p.requires_grad for p in teacher_model.parameters())
    student = build_model(
        IMAGE, adapter_options={"preset": "small", "size": 16}, encoder_options=FAST["encoder_options"]
    )
    builder = BatchBuilder(column_specs(student, ["anchor", "positive"]), keep_views=True)
    batch = builder.build([{"anchor": x} for x in imgs], torch.Generator().manual_seed(1))
    got = teacher.targets(batch, student, torch.device("cpu"))
    assert got.shape == (8, 2, 32)
    for v, side in enumerate(("anchor", "positive")):  # encode of the same (augmented) views, as HWC arrays
        arrays = [x.permute(1, 2, 0).numpy() for x in batch["views"][side]]
        assert torch.allclose(got[:, v], teacher_model.encode(arrays, normalize=False), atol=1e-5)


def test_the_teacher_sees_the_students_batched_colour_augmentations():
    from anycl.adapters.image_batched import photometric

    imgs = _images(8, size=16)
    teacher_model = _teacher(size=24)  # another crop: the coloured views are resized for it
    teacher = ViewTeacher(teacher_model, "image")
    student = build_model(
        IMAGE,
        adapter_options={"preset": "small", "size": 16, "augment_on": "batch"},
        encoder_options=FAST["encoder_options"],
    )
    builder = BatchBuilder(column_specs(student, ["anchor", "positive"]), keep_views=True)
    batch = builder.build([{"anchor": x} for x in imgs], torch.Generator().manual_seed(1))
    state = (torch.Generator().manual_seed(7).get_state(), torch.device("cpu"))
    s, t = student.tower("image").adapter, teacher_model.tower("image").adapter
    by_hand, prepared = torch.Generator(), torch.Generator()
    by_hand.set_state(state[0])
    prepared.set_state(state[0])
    want = []
    for side in ("anchor", "positive"):  # the student's forward: anchor, then positive, one generator
        x = photometric(batch[side].float() / 255, s.aug, by_hand)
        student_saw = s.prepare(batch[side], True, prepared)
        assert torch.allclose(
            student_saw, (x - torch.tensor(s.mean).view(1, -1, 1, 1)) / torch.tensor(s.std).view(1, -1, 1, 1)
        )
        x = F.interpolate(x, size=(24, 24), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        x = (x - torch.tensor(t.mean).view(1, -1, 1, 1)) / torch.tensor(t.std).view(1, -1, 1, 1)
        want.append(teacher_model.tower("image").encoder(x))
    got = teacher.targets(batch, student, torch.device("cpu"), state)
    assert torch.allclose(got, torch.stack(want, 1), atol=1e-5)
    assert not torch.allclose(got, teacher.targets(batch, student, torch.device("cpu")), atol=1e-3)  # colour ops


def test_a_teacher_of_another_crop_gets_the_views_resized_and_an_audio_teacher_its_rate():
    from anycl.adapters.audio import AudioAdapter
    from anycl.adapters.audio_io import resample
    from anycl.adapters.image import ImageAdapter

    view = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    big = ImageAdapter(preset="small", size=24).from_view(view, None)
    want = F.interpolate(view[None].float(), size=(24, 24), mode="bilinear", antialias=True, align_corners=False)
    assert big.dtype == torch.uint8 and torch.equal(big, want[0].round().clamp(0, 255).byte())
    assert ImageAdapter(preset="small", size=16, mode="L").from_view(view, None).shape == (1, 16, 16)
    clip = torch.randn(8000)
    got = AudioAdapter(sample_rate=16000).from_view(clip, AudioAdapter(sample_rate=8000))
    assert torch.allclose(got, resample(clip, 8000, 16000))


# ---- fit ------------------------------------------------------------------------------------------------------
def test_fit_with_a_teacher_adds_the_term_and_never_trains_the_teacher(tmp_path, monkeypatch):
    states = []
    targets = ViewTeacher.targets
    monkeypatch.setattr(
        ViewTeacher, "targets", lambda self, b, m, d, state=None: states.append(state) or targets(self, b, m, d, state)
    )
    imgs = _images(16, size=16)
    teacher = _teacher(size=24)  # its own crop: the views are resized for it
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    seen = _rows_forwarded(teacher)
    model = anycl.fit(imgs, modality="image", teacher=teacher, **{**FAST, "epochs": 2, "log_every": 1})
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    logs = model.trainer.history
    assert len(logs) == 4 and all({"contrastive", "distill"} <= set(r) for r in logs)
    assert all(abs(r["loss"] - r["contrastive"] - r["distill"]) < 1e-4 for r in logs)  # default weight 1
    assert seen[0] == 4 * 8 * 2  # each step: both views of its 8 items, once
    assert len(states) == 4 and all(st is not None for st in states)  # the student's colour ops replayed
    emb = model.encode(imgs[:4])
    model.save(str(tmp_path / "m"))
    loaded = anycl.load(str(tmp_path / "m"))
    assert torch.allclose(loaded.encode(imgs[:4]), emb, atol=1e-5)  # the projection is not part of the model
    assert not any("projection" in k for k in loaded.state_dict())


def test_distill_weight_zero_is_a_plain_run_and_loss_distill_is_distillation_alone():
    imgs = _images(16, size=16)
    plain = anycl.fit(imgs, modality="image", **FAST)
    off = anycl.fit(imgs, modality="image", teacher=_teacher(), distill_weight=0, **FAST)
    assert off.trainer.teacher is None
    assert [r["loss"] for r in off.trainer.history] == [r["loss"] for r in plain.trainer.history]
    weighted = anycl.fit(imgs, modality="image", teacher=_teacher(), distill_weight=0.25, **{**FAST, "log_every": 1})
    r = weighted.trainer.history[0]
    assert abs(r["loss"] - (r["contrastive"] + 0.25 * r["distill"])) < 1e-4
    alone = anycl.fit(imgs, modality="image", teacher=_teacher(), loss="distill", **{**FAST, "log_every": 1})
    assert "contrastive" not in alone.trainer.history[0] and 0 <= alone.trainer.history[0]["loss"] <= 4


def test_the_cache_embeds_each_item_once_whatever_the_epochs():
    imgs = _images(16, size=16)
    teacher = _teacher()
    seen = _rows_forwarded(teacher)
    model = anycl.fit(imgs, modality="image", teacher=teacher, teacher_options={"cache": True}, **{**FAST, "epochs": 3})
    assert seen[0] == 16 and model.trainer.teacher.items == 16  # once per item, not per view or epoch


def test_a_student_learns_a_fixed_random_teachers_features():
    imgs = _images(16, size=16)
    model = anycl.fit(
        imgs,
        modality="image",
        teacher=_teacher(seed=5),
        loss="distill",
        teacher_options={"projection": "mlp"},
        **{**FAST, "epochs": None, "max_steps": 40, "lr": 3e-3, "log_every": 1, "warmup_ratio": 0.0},
    )
    losses = [r["loss"] for r in model.trainer.history]
    assert len(losses) >= 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_a_teacher_by_name_and_an_nn_module_teacher(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(
        torchvision.models.mobilenet_v3_small().state_dict(),
        tmp_path / "hub/checkpoints/mobilenet_v3_small-047dcff4.pth",
    )
    imgs = _images(8, size=16)
    fast = {**FAST, "max_steps": 1, "epochs": None, "log_every": 1}
    named = anycl.fit(imgs, modality="image", teacher="torchvision/mobilenet_v3_small", **fast)
    assert named.trainer.teacher.dim == 1024 and "distill" in named.trainer.history[0]
    assert named.trainer.teacher.tower.adapter.size == 224  # the backbone's own input size
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    module = anycl.fit(imgs, modality="image", teacher=cnn, **fast)
    assert module.trainer.teacher.dim == 6 and not any(p.requires_grad for p in cnn.parameters())


def test_audio_students_distil_an_audio_teacher_at_its_own_rate(tmp_path):
    from test_audio import FAST as AUDIO
    from test_audio import _clips

    items, _ = _clips(tmp_path, 4)
    teacher = build_model(
        {"anchor": "audio", "positive": "audio"},
        adapter_options={"clip_seconds": 0.5, "sample_rate": 8000},
        encoder_options={"channels": [4, 8], "embedding_dim": 12},
        head=None,
    )
    seen = _rows_forwarded(teacher, "audio")
    model = anycl.fit(items, modality="audio", teacher=teacher, **{**AUDIO, "batch_size": 4, "log_every": 1})
    assert model.trainer.teacher.dim == 12 and seen[0] == 2 * 8 and "distill" in model.trainer.history[0]


# ---- errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, match",
    [
        ({"loss": "distill"}, r"loss='distill' needs a teacher"),
        ({"distill_weight": 0.5}, r"\['distill_weight'\] need teacher="),
        ({"teacher": 3}, "teacher must be an anycl model"),
        ({"teacher": "torchvision/not_an_arch"}, "teacher='torchvision/not_an_arch': torchvision has no"),
        ({"teacher": "TEACHER", "teacher_options": {"cahce": True}}, r"unknown teacher_options option 'cahce'"),
        ({"teacher": "TEACHER", "teacher_options": {"cache": "yes"}}, r"teacher_options\['cache'\] must be"),
        ({"teacher": "TEACHER", "distill_weight": -1}, "distill_weight must be a finite number >= 0"),
        ({"teacher": "TEACHER", "loss": "distill", "distill_weight": 2}, "loss='distill' has none"),
        ({"teacher": "TEACHER", "views": 4}, "leave views/local_views unset"),
        ({"teacher": "AUDIO"}, r"embeds \['audio'\], but the student's image items need a image teacher"),
    ],
)
def test_clear_errors(options, match):
    audio = build_model({"anchor": "audio", "positive": "audio"}, encoder_options={"channels": [4], "embedding_dim": 8})
    given = {k: (_teacher() if v == "TEACHER" else audio if v == "AUDIO" else v) for k, v in options.items()}
    with pytest.raises(ConfigError, match=match):
        anycl.fit(_images(8, size=16), modality="image", **{**FAST, **given})

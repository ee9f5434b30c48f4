"""Multi-view training, DINO, NNCLR: losses against hand-written references, and fit through each path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_image import _images
from toy_modality import toy_rows  # noqa: F401  (registers "toyvec")

import anycl
from anycl.errors import ConfigError
from anycl.losses import DINO, NNCLR, InfoNCE, MultiViewInfoNCE
from anycl.losses.dino import teacher_temperature_at
from anycl.losses.multiview import view_pairs
from anycl.losses.nnclr import nearest_neighbours

pytestmark = pytest.mark.usefixtures("one_thread")


# -- multi-view InfoNCE ---------------------------------------------------------------------------------
def _loop_multiview_infonce(views, num_global, tau):
    """Reference: a Python loop over (anchor view, other global view) pairs, one cross-entropy each."""
    z = F.normalize(views.double(), dim=-1)
    terms = []
    for a in range(views.shape[0]):
        for g in range(num_global):
            if a == g:
                continue
            logits = z[a] @ z[g].T / tau
            terms.append(F.cross_entropy(logits, torch.arange(views.shape[1])))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("num_global,num_local", [(2, 0), (3, 0), (2, 3), (4, 2)])
def test_multiview_infonce_equals_loop_over_view_pairs(num_global, num_local):
    g = torch.Generator().manual_seed(num_global * 10 + num_local)
    views = torch.randn(num_global + num_local, 7, 5, generator=g)
    loss = MultiViewInfoNCE(temperature=0.3)
    got = loss.forward_views(views[:num_global], views[num_global:] if num_local else None)
    assert float(got) == pytest.approx(float(_loop_multiview_infonce(views, num_global, 0.3)), rel=1e-5)
    assert len(view_pairs(num_global, num_local)) == (num_global + num_local) * num_global - num_global


def test_multiview_infonce_with_two_views_is_symmetric_infonce_and_has_its_gradient():
    a = torch.randn(6, 8, requires_grad=True)
    p = torch.randn(6, 8, requires_grad=True)
    mv = MultiViewInfoNCE(temperature=0.2)(a, p)
    ref = InfoNCE(temperature=0.2, symmetric=True)(a, p)
    assert float(mv.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    ga = torch.autograd.grad(mv, a)[0]
    gr = torch.autograd.grad(ref, a)[0]
    torch.testing.assert_close(ga, gr, rtol=1e-4, atol=1e-6)


# -- DINO -----------------------------------------------------------------------------------------------
def _dino_reference(student, teacher, protos_s, protos_t, center, tau_s, tau_t, num_global):
    """Reference: loops over pairs, rows and prototypes, straight from the paper's formula."""
    ws = F.normalize(protos_s.double(), dim=1)
    wt = F.normalize(protos_t.double(), dim=1)
    total, count = 0.0, 0
    for g in range(num_global):
        for a in range(student.shape[0]):
            if a == g:
                continue
            for i in range(student.shape[1]):
                t = F.normalize(teacher[g, i].double(), dim=0) @ wt.T
                s = F.normalize(student[a, i].double(), dim=0) @ ws.T
                pt = torch.exp((t - center.double()[0]) / tau_t)
                pt = pt / pt.sum()
                log_ps = s / tau_s - torch.log(torch.exp(s / tau_s).sum())
                total += float(-(pt * log_ps).sum())
                count += 1
    return total / count


def test_dino_loss_centre_and_teacher_prototypes_follow_the_formulas():
    torch.manual_seed(0)
    loss = DINO(
        out_dim=9,
        student_temperature=0.1,
        teacher_temperature=0.04,
        center_momentum=0.8,
        momentum=0.9,
        final_momentum=1.0,
        dim=5,
    )
    with torch.no_grad():
        loss.center.copy_(torch.randn(1, 9) * 0.1)
        loss.teacher_prototypes.add_(0.05 * torch.randn(9, 5))
    student = torch.randn(5, 4, 5)  # 2 global + 3 local views of 4 items
    teacher = torch.randn(2, 4, 5)
    c0, wt0 = loss.center.clone(), loss.teacher_prototypes.clone()
    out = loss.forward_views(student[:2], student[2:], target=teacher)
    ref = _dino_reference(student, teacher, loss.prototypes.detach(), wt0, c0, 0.1, 0.04, 2)
    assert float(out["loss"].detach()) == pytest.approx(ref, rel=1e-5)
    # centring: c <- m c + (1 - m) mean over every teacher row of its prototype scores
    t = F.normalize(teacher.reshape(-1, 5), dim=1) @ F.normalize(wt0, dim=1).T
    torch.testing.assert_close(loss.center, 0.8 * c0 + 0.2 * t.mean(0, keepdim=True), rtol=1e-5, atol=1e-7)
    # teacher EMA at step 3 of 10: m = 1 - (1 - 0.9) (cos(pi 3/10) + 1) / 2
    m = 1 - (1 - 0.9) * (math.cos(math.pi * 3 / 10) + 1) / 2
    loss.on_train_step_end(3, 10)
    torch.testing.assert_close(loss.teacher_prototypes, m * wt0 + (1 - m) * loss.prototypes.detach())
    # eval mode: the centre stays
    loss.eval()
    c1 = loss.center.clone()
    loss.forward_views(student[:2], None, target=teacher)
    assert torch.equal(loss.center, c1)


def test_dino_pairwise_form_is_the_two_view_case_and_gradient_reaches_only_the_student():
    torch.manual_seed(1)
    loss = DINO(out_dim=6, dim=4)
    a = torch.randn(3, 4, requires_grad=True)
    p = torch.randn(3, 4)
    ta, tp = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4)
    loss.eval()
    pair = loss(a, p, target={"anchor": ta, "positive": tp})["loss"]
    views = loss.forward_views(torch.stack([a, p]), target=torch.stack([ta, tp]))["loss"]
    assert float(pair.detach()) == pytest.approx(float(views.detach()))
    pair.backward()
    assert a.grad is not None and ta.grad is None
    with pytest.raises(ValueError, match="momentum teacher"):
        loss(a, p)


def test_dino_teacher_temperature_warmup_and_bad_options():
    assert teacher_temperature_at(0, 0.07, 0.04, 10) == pytest.approx(0.04)
    assert teacher_temperature_at(5, 0.07, 0.04, 10) == pytest.approx(0.055)
    assert teacher_temperature_at(10, 0.07, 0.04, 10) == pytest.approx(0.07)
    assert teacher_temperature_at(3, 0.07, None, 10) == pytest.approx(0.07)
    for bad in (
        dict(out_dim=1),
        dict(teacher_temperature=0),
        dict(center_momentum=1.5),
        dict(warmup_teacher_temperature=-1.0),
    ):
        with pytest.raises(ConfigError):
            DINO(**bad)


# -- NNCLR ----------------------------------------------------------------------------------------------
def test_nearest_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(10, 6, generator=g), dim=1)
    s = F.normalize(torch.randn(40, 6, generator=g), dim=1)
    got = nearest_neighbours(q, s)
    for i in range(10):
        best = max(range(40), key=lambda j: float((q[i] * s[j]).sum()))
        assert torch.equal(got[i], s[best])


def test_nnclr_loss_uses_the_queue_before_enqueueing_and_matches_reference():
    g = torch.Generator().manual_seed(3)
    loss = NNCLR(temperature=0.5, queue_size=8)
    a1, p1 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    first = loss(a1, p1)  # empty queue: each view is its own neighbour -> symmetric InfoNCE
    ref = InfoNCE(temperature=0.5, symmetric=True)(a1, p1)
    assert float(first) == pytest.approx(float(ref), rel=1e-5) and not loss.last_support_used
    bank = F.normalize(a1, dim=1)
    torch.testing.assert_close(loss.queue.get(), bank)
    a2, p2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    second = loss(a2, p2)
    na, np_ = F.normalize(a2, dim=1), F.normalize(p2, dim=1)

    def term(q, c):
        nn_q = torch.stack([bank[int((bank @ q[i]).argmax())] for i in range(4)])
        return F.cross_entropy(nn_q @ c.T / 0.5, torch.arange(4))

    assert float(second) == pytest.approx(float(0.5 * (term(na, np_) + term(np_, na))), rel=1e-5)
    assert loss.last_support_used and loss.queue.filled == 8
    with pytest.raises(ConfigError, match="queue"):
        NNCLR(queue_size=2)(a2, p2)


# -- fit through each path ------------------------------------------------------------------------------
def _toy(n=16):
    return [{"anchor": r["anchor"]} for r in toy_rows(n)]


TOY = dict(
    modality="toyvec", batch_size=8, max_steps=4, progress=False, seed=5, lr=1e-2, adapter_options={"noise": 0.0}
)


def test_multiview_fit_with_gradcache_gives_the_same_weights_as_without():
    fp32 = {**TOY, "mixed_precision": "no"}  # the equality is fp32's ("auto" may pick bf16)
    plain = anycl.fit(_toy(), views=3, **fp32)
    cached = anycl.fit(_toy(), views=3, gradcache_mini_batch=5, **fp32)
    assert plain.info["loss"] == "multiview_infonce"
    a, b = plain.state_dict(), cached.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_pairwise_default_is_unchanged_by_the_new_options():
    rows = toy_rows(16)
    a = anycl.fit(rows, **TOY).state_dict()
    b = anycl.fit(rows, views=None, local_views=0, **TOY).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k])


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(views=1), "views must be an integer >= 2"),
        (dict(views=2.5), "views must be"),
        (dict(local_views=-1), "local_views must be"),
        (dict(views=3, loss="infonce"), "takes pairs"),
        (dict(local_views=2), "local views"),  # toyvec has no local_view
    ],
)
def test_multiview_options_are_checked(bad, match):
    with pytest.raises(ConfigError, match=match):
        anycl.fit(_toy(), **{**TOY, **bad})


def test_multiview_needs_anchor_only_rows():
    with pytest.raises(ConfigError, match="positive"):
        anycl.fit(toy_rows(16), views=3, **TOY)


IMG = dict(
    modality="image",
    adapter_options={"preset": "small", "size": 16, "local_size": 8},
    encoder_options={"arch": "resnet10", "width": 8},
    batch_size=8,
    max_steps=2,
    progress=False,
    seed=3,
)


@pytest.mark.parametrize(
    "kw",
    [
        dict(views=3, local_views=2),
        dict(views=2, local_views=2, loss="dino"),
        dict(loss="dino"),
        dict(loss="nnclr", loss_options={"queue_size": 16}),
        dict(views=2, local_views=2, loss="dino", gradcache_mini_batch=4),
    ],
)
def test_image_fit_smoke_through_each_path(kw):
    imgs = _images(16)
    model = anycl.fit(imgs, **IMG, **kw)
    assert model.trainer.global_step == 2
    assert all(math.isfinite(h["loss"]) for h in model.trainer.history)
    assert model.encode(imgs[:3]).shape[0] == 3


def test_multiview_batch_layout_is_view_major():
    from anycl.adapters.image import ImageAdapter
    from anycl.data.views import MultiViewBatchBuilder

    a = ImageAdapter(preset="small", size=16, local_size=8)
    b = MultiViewBatchBuilder({"anchor": a, "positive": a}, views=3, local_views=2)
    rows = [{"anchor": x} for x in _images(4)]
    batch = b.build(rows, torch.Generator().manual_seed(0))
    assert batch["anchor"].shape == (12, 3, 16, 16) and batch["positive"].shape == (8, 3, 8, 8)
    assert batch["num_views"] == 3 and batch["num_local_views"] == 2 and batch["size"] == 4
    # item 1's views sit at rows 1, 5, 9: replay the generator row by row
    g = torch.Generator().manual_seed(0)
    first = [a.augment(a.load(rows[0]["anchor"]), g) for _ in range(3)]
    for _ in range(2):
        a.local_view(a.load(rows[0]["anchor"]), g)
    second = [a.augment(a.load(rows[1]["anchor"]), g) for _ in range(3)]
    for v in range(3):
        assert torch.equal(batch["anchor"][v * 4], first[v]) and torch.equal(batch["anchor"][v * 4 + 1], second[v])


def test_audio_local_view_length_and_bad_local_seconds():
    from anycl.adapters.audio import AudioAdapter

    a = AudioAdapter(sample_rate=8000, clip_seconds=0.5, local_seconds=0.2)
    wave = torch.randn(8000)
    v = a.local_view(wave, torch.Generator().manual_seed(0))
    assert v.shape == (1600,)
    assert AudioAdapter(sample_rate=8000, clip_seconds=0.5).local_view(wave[:100], torch.Generator()).shape == (2000,)
    with pytest.raises(ConfigError, match="local_seconds"):
        AudioAdapter(clip_seconds=0.5, local_seconds=0.8)


@pytest.mark.slow
def test_multiview_dino_resumes_to_the_uninterrupted_weights_teacher_and_centre(tmp_path):
    from anycl.training.checkpoint import complete_checkpoints

    opts = {
        **TOY,
        "max_steps": None,
        "epochs": 2,
        "loss": "dino",
        "views": 3,
        "loss_options": {"out_dim": 8, "warmup_teacher_temperature": 0.02, "warmup_teacher_steps": 3},
    }
    full = anycl.fit(_toy(32), output_dir=str(tmp_path / "a"), checkpoint_every=3, keep_checkpoints=None, **opts)
    assert 3 in [s for s, _ in complete_checkpoints(tmp_path / "a" / "checkpoints")]
    resumed = anycl.fit(
        _toy(32), output_dir=str(tmp_path / "a"), resume_from=str(tmp_path / "a" / "checkpoints" / "step-3"), **opts
    )
    assert resumed.trainer.global_step == full.trainer.global_step == 8
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    a, b = full.trainer.loss, resumed.trainer.loss
    assert b.step == a.step == 8
    for name in ("prototypes", "teacher_prototypes", "center"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-6)


def test_multiview_skips_or_raises_on_unreadable_items():
    from anycl.errors import DataError

    rows = [{"anchor": r["anchor"]} for r in toy_rows(16, corrupt=(3,))]
    with pytest.raises(DataError, match="NaN"):
        anycl.fit(rows, views=3, **TOY)
    model = anycl.fit(rows, views=3, on_bad_item="skip", **TOY)
    assert model.trainer.builder.skipped >= 1 and "NaN" in model.trainer.builder.skipped_examples[0]


def test_bad_view_counts_fail_before_any_model_is_built(monkeypatch):
    from anycl import api

    def no_model(*a, **k):
        raise AssertionError("a model was built before views were checked")

    monkeypatch.setattr(api, "build_model", no_model)
    with pytest.raises(ConfigError, match="views must"):
        anycl.fit(_toy(), **{**TOY, "views": 0})
    with pytest.raises(ConfigError, match="takes pairs"):
        anycl.fit(_toy(), **{**TOY, "views": 3, "loss": "nnclr"})
    with pytest.raises(ConfigError, match="local views"):
        anycl.fit(_toy(), **{**TOY, "local_views": 2})
    with pytest.raises(ConfigError, match="one modality"):
        anycl.fit(
            [{"anchor": "a", "positive": [0.0] * 6}] * 4,
            **{**TOY, "views": 3, "modality": {"anchor": "text", "positive": "toyvec"}},
        )

"""GradCache: the cached gradients equal the uncached ones (independent reference: autograd through
the whole batch), for text (real MiniLM, dropout on, hard negatives), a custom modality with random
on-device augmentation, dropout and BatchNorm, every registered loss, dict-returning losses, and
through ``fit``."""

import copy
import inspect

import pytest
import torch
from toy_modality import ToyEncoder, toy_rows  # noqa: F401  (registers "toyvec")

import anycl
from anycl import losses as loss_registry
from anycl.api import build_model
from anycl.data.batching import BatchBuilder
from anycl.errors import ConfigError
from anycl.losses.momentum import embedding_width
from anycl.training.gradcache import GradCache, RandState, count_rows, slice_rows
from anycl.training.trainer import TrainingModule, split_loss

SIDES3 = ("anchor", "positive", "negative")


def build_batch(model, rows, num_neg):
    adapters = {s: model.tower(s).adapter for s in SIDES3}
    cols = [f"negative_{k + 1}" for k in range(num_neg)]
    return BatchBuilder(adapters, cols).build(rows, torch.Generator().manual_seed(0))


def text_triplets():
    """Six (anchor, positive, negative_1) text rows, one topic each."""
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins"]
    return [
        {
            "anchor": f"what do we know about {t}?",
            "positive": f"some facts on {t} and more",
            "negative_1": f"nothing at all about {t}, only about the weather",
        }
        for t in topics
    ]


def grads(module):
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def assert_grads_close(a, b, rtol=1e-4, atol=1e-6):
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def full_batch_grads(module, batch, seed=0, gen_seed=1):
    """The uncached step the trainer takes: one forward of the whole batch, one backward."""
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, terms = split_loss(module(batch, torch.Generator().manual_seed(gen_seed)))
    loss.backward()
    return float(loss.detach()), terms, grads(module)


def chunked_grads(module, batch, mini, seed=0, gen_seed=1):
    """Reference with the same random draws as GradCache: each mini-batch embedded *with* grad in the same
    order and with the same generators, all graphs kept, one backward through everything."""
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(gen_seed)
    model, emb = module.model, {}
    for side in SIDES3:
        if side not in batch:
            continue
        n = count_rows(batch[side], model.tower(side).adapter)
        emb[side] = torch.cat(
            [
                model({side: slice_rows(batch[side], s, min(s + mini, n), n)}, generator=gen)[side]
                for s in range(0, n, mini)
            ]
        )
    loss, terms = split_loss(module.compute_loss(emb, batch))
    loss.backward()
    return float(loss.detach()), terms, grads(module)


def cached_grads(module, batch, mini, seed=0, gen_seed=1):
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, terms = GradCache(mini).step(module, batch, torch.Generator().manual_seed(gen_seed))
    return float(loss.detach()), terms, grads(module)


# -- text: the real MiniLM -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_module(minilm_path):
    model = build_model({s: "text" for s in SIDES3}, model=minilm_path, adapter_options={"max_seq_length": 32})
    return TrainingModule(model, loss_registry.get("infonce", temperature=0.05))


@pytest.fixture(scope="module")
def text_batch(text_module):
    return build_batch(text_module.model, text_triplets(), 1)


def test_text_gradcache_equals_full_batch_without_dropout(text_module, text_batch):
    text_module.eval()  # dropout off: the full-batch step is the exact reference
    try:
        ref = full_batch_grads(text_module, text_batch)
        got = cached_grads(text_module, text_batch, mini=4)
    finally:
        text_module.train()
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    assert_grads_close(got[2], ref[2])


def test_text_gradcache_replays_dropout_exactly(text_module, text_batch):
    text_module.train()
    ref = chunked_grads(text_module, text_batch, mini=4, seed=3)
    got = cached_grads(text_module, text_batch, mini=4, seed=3)
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    assert_grads_close(got[2], ref[2])
    # the check has teeth: dropout is on (another seed gives another loss) and without the replay the
    # gradients are wrong
    assert cached_grads(text_module, text_batch, mini=4, seed=4)[0] != pytest.approx(ref[0], rel=1e-5)
    restore = RandState.restore
    RandState.restore = lambda self: None
    try:
        broken = cached_grads(text_module, text_batch, mini=4, seed=3)
    finally:
        RandState.restore = restore
    name = next(k for k in ref[2] if "layer.0.attention" in k and k.endswith("weight"))
    assert not torch.allclose(broken[2][name], ref[2][name], rtol=1e-3, atol=1e-6)


# -- a custom modality: generator-drawn augmentation in prepare, dropout, BatchNorm ---------------------
def toy_module(loss="infonce", noise=0.0, dropout=0.0, batchnorm=False, head=None, **loss_options):
    torch.manual_seed(0)
    model = build_model(
        {s: "toyvec" for s in SIDES3},
        adapter_options={"noise": noise},
        encoder_options={"dropout": dropout, "batchnorm": batchnorm},
        head=head,
    )
    return TrainingModule(model, loss_registry.get(loss, **loss_options))


@pytest.mark.parametrize("mini", [1, 3, 5, 64])
def test_toy_gradcache_equals_full_batch(mini):
    module = toy_module(temperature=0.3)
    batch = build_batch(module.model, toy_rows(10, negatives=2), 2)
    ref = full_batch_grads(module, batch)
    got = cached_grads(module, batch, mini)
    assert got[0] == pytest.approx(ref[0], rel=1e-6)
    assert_grads_close(got[2], ref[2])


def test_toy_replays_prepare_generator_dropout_and_keeps_batchnorm_statistics():
    module = toy_module(noise=0.5, dropout=0.3, batchnorm=True, head="mlp", temperature=0.3)
    batch = build_batch(module.model, toy_rows(12, negatives=1, labels=True), 1)
    before = copy.deepcopy(module.state_dict())
    ref = chunked_grads(module, batch, mini=4)
    ref_state = copy.deepcopy(module.state_dict())  # running statistics after one pass of mini-batches
    module.load_state_dict(before)
    got = cached_grads(module, batch, mini=4)
    assert got[0] == pytest.approx(ref[0], rel=1e-6)
    assert_grads_close(got[2], ref[2])
    for k, v in module.state_dict().items():  # BatchNorm statistics updated once per mini-batch, not twice
        torch.testing.assert_close(v, ref_state[k], msg=lambda m: f"{k}: {m}")
    # the noise really comes from the generator the trainer hands over
    module.load_state_dict(before)
    assert cached_grads(module, batch, mini=4, gen_seed=2)[0] != pytest.approx(ref[0], rel=1e-6)


def test_generator_and_global_rng_continue_as_after_the_first_pass():
    module = toy_module(noise=0.5, dropout=0.3)
    batch = build_batch(module.model, toy_rows(6), 0)
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    GradCache(2).step(module, batch, gen)
    after_cached = (torch.rand(3), torch.rand(3, generator=gen))
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    GradCache(2).embed_without_grad(module.model, batch, gen)
    assert torch.equal(after_cached[0], torch.rand(3)) and torch.equal(after_cached[1], torch.rand(3, generator=gen))


# -- every registered loss, and losses returning dicts -------------------------------------------------
class _VectorTeacher:
    """A stand-in teacher (distill_mse needs one to be built; its embeddings are put in the batch)."""

    def encode(self, items, **kw):
        return torch.zeros(len(items), 12)


class _ViewTeacherStub:
    """A stand-in view teacher (the distill loss): fixed vectors per row and view, as its targets are."""

    def targets(self, batch, student, device, state=None):
        return torch.randn(batch["size"], 2, 5, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", sorted(set(loss_registry.names())))
def test_every_registered_loss(name):
    cls = loss_registry.LOSSES.lookup(name)
    teacher = getattr(cls, "needs_teacher", False)
    options = {"teacher": _VectorTeacher()} if teacher else {}
    if "num_labels" in inspect.signature(cls).parameters:
        options["num_labels"] = 3  # softmax: a classifier over the toy rows' three labels
    module = toy_module(loss=name, **options)
    cls = module.loss
    if getattr(cls, "needs_view_teacher", False):  # distill: the teacher's vectors of the views, a projection
        module.teacher = _ViewTeacherStub()
        cls.build_projection(embedding_width(module.model), 5)
    negatives = 2 if getattr(cls, "accepts_negatives", True) and not getattr(cls, "negative_free", False) else 0
    if "negative_score" in getattr(cls, "score_columns", ()):
        negatives = 1  # margin_mse: one negative with its teacher score
    rows = toy_rows(9, negatives=negatives, labels=True, scores=True)
    allowed = getattr(cls, "label_values", None) or (0, 1, 2)  # contrastive: 0/1 labels
    for i, r in enumerate(rows):  # a teacher's scores (margin_mse); ignored by the other losses
        r["positive_score"], r["negative_score"] = 2.0 + i % 3, float(i % 2)
        r["label"] = allowed[i % len(allowed)]
    batch = build_batch(module.model, rows, negatives)
    if teacher:  # distill_mse: the teacher's embeddings of the anchors, as fit precomputes them
        batch["teacher"] = torch.randn(9, 12, generator=torch.Generator().manual_seed(1))
    if module.second_tower is not None:  # Contrastive Tension: two towers, which GradCache refuses (and fit first)
        with pytest.raises(ConfigError, match="second copy"):
            cached_grads(module, batch, mini=4)
        return
    reference = copy.deepcopy(module)  # stateful losses (queues, EMA targets) start equal
    ref = full_batch_grads(reference, batch)
    got = cached_grads(module, batch, mini=4)
    assert got[0] == pytest.approx(ref[0], rel=1e-5, abs=1e-6)
    assert_grads_close(got[2], ref[2], rtol=1e-4, atol=1e-6)


def test_loss_returning_a_dict_and_learnable_loss_parameters():
    class DictLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.log_scale = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, anchor, positive, negative=None, labels=None):
            logits = anchor @ positive.T * self.log_scale.exp()
            ce = torch.nn.functional.cross_entropy(logits, torch.arange(len(anchor)))
            return {"loss": ce, "alignment": (anchor - positive).pow(2).sum(1).mean()}

    torch.manual_seed(0)
    model = build_model({s: "toyvec" for s in SIDES3}, head=None)
    module = TrainingModule(model, DictLoss())
    batch = build_batch(model, toy_rows(7), 0)
    ref = full_batch_grads(module, batch)
    got = cached_grads(module, batch, mini=2)
    assert got[1].keys() == {"alignment"} and got[1]["alignment"] == pytest.approx(ref[1]["alignment"])
    assert "loss.log_scale" in got[2]
    assert_grads_close(got[2], ref[2])


# -- through fit ---------------------------------------------------------------------------------------
def test_fit_with_gradcache_trains_to_the_same_weights():
    rows = toy_rows(24, negatives=1)
    # fp32 given: GradCache's equality with the uncached step is exact arithmetic's ("auto" may pick bf16)
    opts = dict(modality="toyvec", batch_size=8, epochs=2, progress=False, seed=3, lr=1e-2, mixed_precision="no")
    plain = anycl.fit(rows, **opts)
    cached = anycl.fit(rows, gradcache_mini_batch=3, **opts)
    assert cached.trainer.global_step == plain.trainer.global_step == 6
    a, b = plain.state_dict(), cached.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in cached.trainer.history] == pytest.approx(
        [h["loss"] for h in plain.trainer.history], rel=1e-4
    )


def test_a_long_step_shows_its_mini_batches_on_the_training_bar(capsys):
    """8 rows of anchor, positive and one negative, mini-batches of 3: 3 + 3 + 3 passes each way, 18 sub-steps."""
    anycl.fit(toy_rows(8, negatives=1), modality="toyvec", batch_size=8, max_steps=1, seed=0, gradcache_mini_batch=3)
    err = capsys.readouterr().err
    assert "step 1: mini-batch 18/18" in err  # the last sub-step always shows


def test_sub_step_progress_is_shown_at_most_once_a_second():
    from anycl.progress import SubSteps

    class Bar:
        shown = []

        def set_postfix_str(self, text, refresh=True):
            self.shown.append(text)

    sub = SubSteps(Bar(), lambda: 7, every=3600.0)
    for done in range(1, 11):
        sub(done, 10)
    assert Bar.shown == ["step 7: mini-batch 1/10", "step 7: mini-batch 10/10"]


@pytest.mark.parametrize("bad", [0, -2, 2.5, "8", True])
def test_bad_mini_batch_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="gradcache_mini_batch must be a positive integer"):
        anycl.fit(toy_rows(8), modality="toyvec", gradcache_mini_batch=bad, progress=False)


# -- the other modalities (tiny inputs): BatchNorm encoders and heads, random prepare-time augmentation --
def check_replay_against_chunked_reference(model, rows, num_neg, mini):
    """GradCache == the with-grad reference over the same mini-batches and random draws (dropout,
    augmentation, per-mini-batch BatchNorm), including the BatchNorm running statistics afterwards;
    and with one mini-batch per side, == the trainer's uncached step."""
    module = TrainingModule(model, loss_registry.get("infonce", temperature=0.2))
    batch = build_batch(model, rows, num_neg)
    start = copy.deepcopy(module.state_dict())
    twin = copy.deepcopy(module)  # adapters with state (e.g. the audio mixup bank) start equal too
    ref = chunked_grads(twin, batch, mini)
    got = cached_grads(module, batch, mini)
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    assert_grads_close(got[2], ref[2], rtol=1e-4, atol=1e-5)
    ref_state = twin.state_dict()
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, ref_state[k], msg=lambda m: f"{k}: {m}")
    module.load_state_dict(start)
    twin = copy.deepcopy(module)
    full = full_batch_grads(twin, batch)
    whole = cached_grads(module, batch, mini=10_000)
    assert whole[0] == pytest.approx(full[0], rel=1e-5)
    assert_grads_close(whole[2], full[2], rtol=1e-4, atol=1e-5)


def test_audio_gradcache_matches_uncached():
    pytest.importorskip("anycl.adapters.audio")
    import numpy as np

    sr = 16000
    t = np.arange(int(0.4 * sr)) / sr

    def clip(f, phase=0.0):
        return {"array": (0.5 * np.sin(2 * np.pi * f * t + phase)).astype(np.float32), "sampling_rate": sr}

    rows = [
        {"anchor": clip(200 + 40 * i), "positive": clip(200 + 40 * i, 0.5), "negative_1": clip(900 + 30 * i)}
        for i in range(6)
    ]
    torch.manual_seed(0)
    model = build_model(
        {s: "audio" for s in SIDES3},
        # "strong": the replay must reproduce the seeded spectrogram augmentations and the mixup bank too
        adapter_options={"clip_seconds": 0.25, "augment": "strong"},
        encoder_options={"channels": [4, 8], "embedding_dim": 16},
    )
    check_replay_against_chunked_reference(model, rows, 1, mini=4)


def test_image_gradcache_matches_uncached():
    pytest.importorskip("anycl.adapters.image")
    import numpy as np

    rng = np.random.default_rng(0)
    rows = [{"anchor": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)} for _ in range(6)]  # two augmented views
    torch.manual_seed(0)
    model = build_model(
        {s: "image" for s in SIDES3},
        adapter_options={"preset": "small", "size": 16},
        encoder_options={"arch": "resnet10", "width": 8},
    )
    check_replay_against_chunked_reference(model, rows, 0, mini=4)

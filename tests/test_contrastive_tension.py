"""Contrastive Tension (anycl.losses.contrastive_tension, anycl.sampling.contrastive_tension) against
sentence-transformers' ContrastiveTensionLoss, ContrastiveTensionLossInBatchNegatives and ContrastiveTensionDataLoader:
the same value and gradients on the same batch with the same weights in both towers (the towers made different
first, so a swapped tower would show), the training module routing the anchor side to its copy, a short fit that
moves both towers and saves the model alone, the sampler's batches, and the inputs refused."""

import copy
import random

import pytest
import torch
from safetensors.torch import load_file

import anycl
from anycl.api import build_model
from anycl.data.batching import BatchBuilder
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.sampling.contrastive_tension import ContrastiveTensionSampler, ct_pairs, sentences_per_batch
from anycl.statefile import load_state
from anycl.training.step import TrainingModule

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "a cat sits on the mat",
    "rivers run to the sea",
    "engines need fuel",
    "bread is baked in an oven",
    "stars shine at night",
    "violins have four strings",
    "glaciers are slow rivers of ice",
    "the stock market fell today",
    "chess is a game of kings",
    "a dog barks at the postman",
    "tea is brewed with hot water",
    "mountains rise above the clouds",
]


@pytest.fixture(scope="module")
def towers(minilm_path):
    """ST's model2 (the model) and model1 (its copy), cut to one layer, in eval mode, the copy's weights moved."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path, device="cpu")
    model[0].auto_model.encoder.layer = model[0].auto_model.encoder.layer[:1]
    copy_ = copy.deepcopy(model)
    _perturb(copy_)
    return model.eval(), copy_.eval()


def _perturb(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))


def _grads(*modules, extra=()):
    params = [p for m in modules for p in m.parameters()] + list(extra)
    out = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    return out


def _assert_same(st_value, value, st_grads, grads):
    assert float(value.detach()) == pytest.approx(float(st_value.detach()), rel=1e-5, abs=1e-6)
    assert any(float(g.abs().max()) > 0 for g in st_grads)
    for g_st, g in zip(st_grads, grads):
        torch.testing.assert_close(g, g_st, atol=1e-5, rtol=1e-4)


def _embed(st, sentences):
    return st(st.tokenize(list(sentences)))["sentence_embedding"]


@pytest.mark.parametrize("given_labels", [False, True])
def test_contrastive_tension_equals_sentence_transformers(towers, given_labels):
    from sentence_transformers.sentence_transformer.losses import ContrastiveTensionLoss

    model, copy_ = towers
    first = SENTENCES[:6]
    second = [SENTENCES[0], SENTENCES[7], SENTENCES[8], SENTENCES[3], SENTENCES[9], SENTENCES[10]]
    labels = torch.tensor([1, 0, 0, 1, 0, 0])
    st_loss = ContrastiveTensionLoss(model)
    st_loss.model1 = copy_  # ST's copy, with the weights anycl's second tower has
    features = [model.tokenize(first), model.tokenize(second)]
    st_value = st_loss(features, labels if given_labels else None)  # None: ST labels identical token ids 1
    st_value.backward()
    st_grads = _grads(copy_, model)
    ours = anycl.losses.get("ContrastiveTensionLoss")
    assert ours.registry_name == "contrastive_tension" and ours.second_tower
    value = ours(_embed(copy_, first), _embed(model, second), labels=labels)
    value.backward()
    _assert_same(st_value, value, st_grads, _grads(copy_, model))


@pytest.mark.parametrize("scale", [20.0, 7.5])
def test_in_batch_equals_sentence_transformers_with_its_learnt_scale(towers, scale):
    from sentence_transformers.sentence_transformer.losses import ContrastiveTensionLossInBatchNegatives

    model, copy_ = towers
    st_loss = ContrastiveTensionLossInBatchNegatives(model, scale=scale)
    st_loss.model1 = copy_
    st_value = st_loss([model.tokenize(SENTENCES[:6])], None)
    st_value.backward()
    st_grads = _grads(copy_, model, extra=[st_loss.logit_scale])
    ours = anycl.losses.get("ContrastiveTensionLossInBatchNegatives", scale=scale)
    assert ours.registry_name == "contrastive_tension_in_batch" and ours.second_tower
    assert float(ours.tau.log_scale.detach()) == pytest.approx(float(st_loss.logit_scale.detach()))
    value = ours(_embed(copy_, SENTENCES[:6]), _embed(model, SENTENCES[:6]))
    value.backward()
    _assert_same(st_value, value, st_grads, _grads(copy_, model, extra=[ours.tau.log_scale]))


def test_the_training_module_embeds_the_anchor_with_its_copy(tiny_text_encoder):
    """Through the training module: the anchor side by the trained copy, the positive side by the model; equal to
    ST's in-batch loss whose model1 is the copy's SentenceTransformer and model2 the model's."""
    from sentence_transformers.sentence_transformer.losses import ContrastiveTensionLossInBatchNegatives

    model = build_model({"anchor": "text", "positive": "text"}, encoder=copy.deepcopy(tiny_text_encoder), head=None)
    module = TrainingModule(model, anycl.losses.get("contrastive_tension_in_batch"))
    assert module.second_tower is not None and module.second_tower is not model
    _perturb(module.second_tower)
    module.eval()
    names = {n.split(".")[0] for n, p in module.named_parameters()}
    assert {"model", "second_tower", "loss"} <= names  # the copy and the scale: parameters the optimiser gets
    adapters = {s: model.tower(s).adapter for s in ("anchor", "positive")}
    batch = BatchBuilder(adapters).build([{"anchor": s} for s in SENTENCES[:6]], torch.Generator().manual_seed(0))
    value = module(batch)
    value.backward()
    ours = _grads(module.second_tower, model, extra=[module.loss.tau.log_scale])
    st_model2 = model.tower("positive").encoder.st
    st_loss = ContrastiveTensionLossInBatchNegatives(st_model2)
    st_loss.model1 = module.second_tower.tower("anchor").encoder.st
    st_value = st_loss([st_model2.tokenize(SENTENCES[:6])], None)
    st_value.backward()
    _assert_same(st_value, value, _grads(module.second_tower, model, extra=[st_loss.logit_scale]), ours)


def test_the_sampler_pairs_through_the_training_module_equal_sentence_transformers(tiny_text_encoder):
    """One column → the contrastive_tension sampler's pairs → the training module (copy: first column, model:
    second) equals ST's ContrastiveTensionLoss on the same pairs, which labels identical token ids 1 itself."""
    from sentence_transformers.sentence_transformer.losses import ContrastiveTensionLoss

    model = build_model({"anchor": "text", "positive": "text"}, encoder=copy.deepcopy(tiny_text_encoder), head=None)
    module = TrainingModule(model, anycl.losses.get("contrastive_tension"))
    _perturb(module.second_tower)
    module.eval()
    rows = to_rows(list(SENTENCES))
    sampler = ContrastiveTensionSampler(pos_neg_ratio=4)
    pairs = sampler.rows_for(rows, sampler.plan(rows, 0, 4)[0])
    assert [p["label"] for p in pairs] == [1, 0, 0, 0]
    adapters = {s: model.tower(s).adapter for s in ("anchor", "positive")}
    value = module(BatchBuilder(adapters).build(pairs, torch.Generator().manual_seed(0)))
    value.backward()
    ours = _grads(module.second_tower, model)
    st_model2 = model.tower("positive").encoder.st
    st_loss = ContrastiveTensionLoss(st_model2)
    st_loss.model1 = module.second_tower.tower("anchor").encoder.st
    features = [st_model2.tokenize([p["anchor"] for p in pairs]), st_model2.tokenize([p["positive"] for p in pairs])]
    st_value = st_loss(features, None)
    st_value.backward()
    _assert_same(st_value, value, _grads(module.second_tower, model), ours)


def test_the_sampler_pairs_as_sentence_transformers_data_loader(monkeypatch):
    from sentence_transformers.sentence_transformer.losses import ContrastiveTensionDataLoader

    monkeypatch.setattr(random, "shuffle", lambda items: None)  # ST's loader keeps the order then
    loader = ContrastiveTensionDataLoader(list(SENTENCES), batch_size=4, pos_neg_ratio=2)
    st_batches = [[(e.texts[0], e.texts[1], e.label) for e in batch] for batch in loader]
    per_batch = sentences_per_batch(4, 2)
    assert per_batch == 6 and len(st_batches) == len(SENTENCES) // per_batch == 2
    rows = to_rows(list(SENTENCES))
    ours = [ct_pairs(rows, list(range(b * per_batch, (b + 1) * per_batch)), 2) for b in range(2)]
    assert [[(r["anchor"], r["positive"], r["label"]) for r in batch] for batch in ours] == st_batches
    # the sampler: as many whole batches, every sentence read at most once per epoch, the ratio held, seeded
    sampler = ContrastiveTensionSampler(pos_neg_ratio=2, seed=3)
    plan = sampler.plan(rows, 0, 4)
    assert len(plan) == 2 and all(len(b) == 6 for b in plan)
    assert len({i for b in plan for i in b}) == 12
    assert plan == sampler.plan(rows, 0, 4) and plan != sampler.plan(rows, 1, 4)
    pairs = sampler.rows_for(rows, plan[0])
    assert [r["label"] for r in pairs] == [1, 0, 1, 0]
    assert all((r["anchor"] == r["positive"]) == (r["label"] == 1) for r in pairs)


def test_the_sampler_refuses_what_it_cannot_pair():
    rows = to_rows(list(SENTENCES))
    with pytest.raises(ConfigError, match="batch_size=6 must be a multiple of pos_neg_ratio=4"):
        ContrastiveTensionSampler(pos_neg_ratio=4).plan(rows, 0, 6)
    with pytest.raises(ConfigError, match="reads 15 sentences .* the data has 12"):
        ContrastiveTensionSampler(pos_neg_ratio=8).plan(rows, 0, 8)
    with pytest.raises(ConfigError, match="pos_neg_ratio must be an int >= 1"):
        ContrastiveTensionSampler(pos_neg_ratio=0)
    with pytest.raises(ConfigError, match="has a 'positive' column"):
        ContrastiveTensionSampler().plan(to_rows([{"anchor": "a", "positive": "b"}] * 20), 0, 8)


def _fit(tiny_text_encoder, data, loss, tmp_path=None, **options):
    seen = {}
    options = {
        "encoder": copy.deepcopy(tiny_text_encoder),
        "batch_size": 4,
        "max_steps": 2,
        "lr": 1e-3,
        "progress": False,
        "adapter_options": {"max_seq_length": 16},
        "callbacks": [lambda trainer, step, logs: seen.update(trainer=trainer, loss=logs["loss"])],
        **options,
    }
    if tmp_path is not None:
        options["output_dir"] = str(tmp_path / "run")
    model = anycl.fit(data, modality="text", loss=loss, **options)
    return model, seen


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _moved(before, module):
    after = module.state_dict()
    return sum(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


@pytest.mark.parametrize(
    "loss, options",
    [
        ("ContrastiveTensionLossInBatchNegatives", {}),
        ("contrastive_tension", {"sampler_options": {"pos_neg_ratio": 2}}),
    ],
)
def test_fit_trains_both_towers_and_saves_the_model_alone(tiny_text_encoder, tmp_path, loss, options):
    start = _state(tiny_text_encoder)
    model, seen = _fit(tiny_text_encoder, list(SENTENCES) * 2, loss, tmp_path, **options)
    module = seen["trainer"].module
    module = getattr(module, "module", module)  # unwrapped (one process: Accelerate returns it as it is)
    second = module.second_tower
    assert torch.isfinite(torch.tensor(seen["loss"]))
    encoder = model.tower("anchor").encoder
    copy_encoder = second.tower("anchor").encoder
    assert _moved(start, encoder) > 10 and _moved(start, copy_encoder) > 10  # both towers trained
    assert _moved(_state(encoder), copy_encoder) > 10  # and they differ: two towers, not one
    # the saved folder holds the model (model2 in ST) alone, which loads to the same vectors
    out = tmp_path / "saved"
    encoder.st[0].auto_model.config.num_hidden_layers = 1  # the test's encoder is cut to one layer
    model.save(out)
    weights = {k for f in out.rglob("*.safetensors") for k in load_file(str(f))}
    assert weights and not any("second_tower" in k for k in weights)
    loaded = anycl.load(out)
    torch.testing.assert_close(loaded.encode(SENTENCES[:3]), model.encode(SENTENCES[:3]), atol=1e-5, rtol=1e-4)
    copy_vectors = second.to("cpu").eval()({"anchor": _tokens(model, SENTENCES[:3])}, train=False)["anchor"]
    assert not torch.allclose(torch.as_tensor(loaded.encode(SENTENCES[:3], normalize=False)), copy_vectors, atol=1e-4)


def _tokens(model, sentences):
    adapters = {s: model.tower(s).adapter for s in ("anchor", "positive")}
    batch = BatchBuilder(adapters).build([{"anchor": s} for s in sentences], torch.Generator(), train=False)
    return batch["anchor"]


def test_fit_checkpoints_hold_both_towers_and_a_resume_restores_them(tiny_text_encoder, tmp_path):
    _, seen = _fit(tiny_text_encoder, list(SENTENCES) * 2, "contrastive_tension_in_batch", tmp_path, checkpoint_every=1)
    state = load_state(tmp_path / "run" / "checkpoints" / "step-2", "model")
    assert any(k.startswith("second_tower.") for k in state) and any(k.startswith("model.") for k in state)
    assert "loss.tau.log_scale" in state  # the learnt scale, resumed with the rest
    module = seen["trainer"].module
    trained = _state(getattr(module, "module", module))
    assert all(torch.equal(trained[k], v) for k, v in state.items())
    # resumed from step 1 and run to step 2: the same copy as the uninterrupted run
    _, again = _fit(
        tiny_text_encoder,
        list(SENTENCES) * 2,
        "ct_in_batch",
        tmp_path / "again",
        resume_from=str(tmp_path / "run" / "checkpoints" / "step-1"),
    )
    module = again["trainer"].module
    resumed = _state(getattr(module, "module", module))
    for k, v in trained.items():
        if k.startswith("second_tower."):
            torch.testing.assert_close(resumed[k], v)


def test_fit_trains_labelled_pairs(tiny_text_encoder):
    rows = [
        {"anchor": s, "positive": s if i % 2 else SENTENCES[-1 - i], "label": i % 2} for i, s in enumerate(SENTENCES)
    ]
    _, seen = _fit(tiny_text_encoder, rows, "ContrastiveTensionLoss")
    assert torch.isfinite(torch.tensor(seen["loss"]))


@pytest.mark.parametrize(
    "data, loss, options, match",
    [
        ([{"anchor": s, "positive": s} for s in SENTENCES], "ct_in_batch", {}, "reads one column of sentences"),
        ([{"anchor": s, "positive": s} for s in SENTENCES], "contrastive_tension", {}, "give a 'label' column"),
        (
            [{"anchor": s, "positive": s, "negative": "an unrelated sentence", "label": 1} for s in SENTENCES],
            "contrastive_tension",
            {},
            "without hard negatives",
        ),
        (
            SENTENCES,
            "contrastive_tension",
            {"sampler": "in_batch"},
            "pairs one column .* 'contrastive_tension' sampler",
        ),
        (SENTENCES, "contrastive_tension", {"batch_size": 6}, "must be a multiple of pos_neg_ratio=8"),
        (SENTENCES, "ct_in_batch", {"gradcache_mini_batch": 2}, "does not combine with gradcache_mini_batch"),
        ({"a": SENTENCES, "b": SENTENCES}, "ct_in_batch", {}, "trains on one data set"),
    ],
)
def test_fit_refuses_inputs_contrastive_tension_cannot_use(tiny_text_encoder, data, loss, options, match):
    with pytest.raises(ConfigError, match=match):
        _fit(tiny_text_encoder, data, loss, **options)


def test_a_second_tower_does_not_combine_with_a_momentum_target():
    import toy_modality  # noqa: F401  (registers "toyvec")

    loss = anycl.losses.get("contrastive_tension_in_batch")
    loss.momentum_target = {"momentum": 0.99}
    with pytest.raises(ConfigError, match="does not combine with a momentum target"):
        TrainingModule(build_model({"anchor": "toyvec", "positive": "toyvec"}), loss)

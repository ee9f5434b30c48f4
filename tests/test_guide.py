"""Guided false-negative masking (GISTEmbed): the mask and loss against a plain loop reference (values and
gradients), against sentence-transformers' GISTEmbedLoss, with GradCache, and through fit."""

import math

import pytest
import torch
import torch.nn.functional as F
from toy_modality import toy_rows

import anycl
from anycl.errors import ConfigError
from anycl.losses import InfoNCE


# -- a plain loop reference ---------------------------------------------------------------------------
def loop_guided_infonce(
    a, p, n, ga, gp, gn, tau, margin, strategy="absolute", same_side=False, symmetric=False, labels=None
):
    """Row by row, candidate by candidate: the GISTEmbed-masked InfoNCE, written without matrices."""
    a, p = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    ga, gp = F.normalize(ga, dim=-1), F.normalize(gp, dim=-1)
    B = a.shape[0]
    negs = [] if n is None else list(F.normalize(n.reshape(-1, n.shape[-1]), dim=-1))
    gnegs = [] if gn is None else list(F.normalize(gn.reshape(-1, gn.shape[-1]), dim=-1))

    def cos(x, y):
        return float((x * y).sum())

    def row_loss(q, gq, i, cands, gcands, own_side, own_side_g):
        s = cos(ga[i], gp[i])
        thr = s - margin if strategy == "absolute" else s - abs(s) * margin
        terms = []
        target = None
        for j, (c, gc) in enumerate(zip(cands, gcands)):
            is_pos = j == i
            if not is_pos:
                if gc is not None and cos(gq, gc) > thr:
                    continue
                if labels is not None and j < B and labels[j] == labels[i]:
                    continue
            logit = (q * c).sum() / tau
            terms.append(logit)
            if is_pos:
                target = logit
        if own_side is not None:
            for j in range(B):
                if j == i or (labels is not None and labels[j] == labels[i]):
                    continue
                if cos(gq, own_side_g[j]) > thr:
                    continue
                terms.append((q * own_side[j]).sum() / tau)
        return torch.logsumexp(torch.stack(terms), 0) - target

    total = 0
    for i in range(B):
        total = total + row_loss(a[i], ga[i], i, list(p) + negs, list(gp) + gnegs, a if same_side else None, ga)
    loss = total / B
    if symmetric:
        back = 0
        for i in range(B):
            back = back + row_loss(p[i], gp[i], i, list(a), list(ga), p if same_side else None, gp)
        loss = 0.5 * (loss + back / B)
    return loss


def _inputs(B=6, K=2, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(B, D, generator=g)
    p = a + 0.8 * torch.randn(B, D, generator=g)
    n = torch.randn(B, K, D, generator=g) if K else None
    # the guide: a noisy view of the same geometry, so some candidates pass the threshold and some do not
    ga = a + 0.5 * torch.randn(B, D, generator=g)
    gp = p + 0.5 * torch.randn(B, D, generator=g)
    gn = None if n is None else n + 0.5 * torch.randn(B, K, D, generator=g)
    return a, p, n, ga, gp, gn


CASES = [
    dict(),
    dict(symmetric=True),
    dict(same_side=True),
    dict(same_side=True, symmetric=True),
    dict(labels=[0, 1, 0, 2, 1, 3]),
    dict(same_side=True, symmetric=True, labels=[0, 1, 0, 2, 1, 3]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}" for k in c) or "plain")
@pytest.mark.parametrize("margin,strategy", [(0.0, "absolute"), (0.3, "absolute"), (0.2, "relative")])
@pytest.mark.parametrize("K", [0, 2])
def test_guided_infonce_matches_loop_reference_values_and_gradients(case, margin, strategy, K):
    a, p, n, ga, gp, gn = _inputs(K=K)
    labels = case.get("labels")
    tau = 0.2
    loss_fn = InfoNCE(
        temperature=tau,
        symmetric=case.get("symmetric", False),
        same_side_negatives=case.get("same_side", False),
        guide_margin=margin,
        guide_margin_strategy=strategy,
    )
    leaves = [t.clone().requires_grad_(True) for t in (a, p) + ((n,) if n is not None else ())]
    got = loss_fn(
        leaves[0],
        leaves[1],
        leaves[2] if n is not None else None,
        None if labels is None else torch.tensor(labels),
        guide={"anchor": ga, "positive": gp, "negative": gn},
    )
    got.backward()
    refs = [t.clone().requires_grad_(True) for t in (a, p) + ((n,) if n is not None else ())]
    want = loop_guided_infonce(
        refs[0],
        refs[1],
        refs[2] if n is not None else None,
        ga,
        gp,
        gn,
        tau,
        margin,
        strategy,
        case.get("same_side", False),
        case.get("symmetric", False),
        labels,
    )
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for x, y in zip(leaves, refs):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-6)


def test_the_guide_masks_something_and_changes_the_loss():
    """The inputs of the reference test really exercise the mask (else it could not fail)."""
    a, p, n, ga, gp, gn = _inputs(K=2)
    plain = InfoNCE(temperature=0.2)(a, p, n)
    guided = InfoNCE(temperature=0.2, guide_margin=0.3)(a, p, n, guide={"anchor": ga, "positive": gp, "negative": gn})
    assert not math.isclose(float(plain), float(guided), rel_tol=1e-3)
    # the logged statistic: candidates per anchor the guide masked, counted by a loop
    nga, ngp = F.normalize(ga, dim=-1), F.normalize(gp, dim=-1)
    cands = torch.cat([ngp, F.normalize(gn.reshape(-1, gn.shape[-1]), dim=-1)])
    count = 0
    for i in range(len(a)):
        thr = float(nga[i] @ ngp[i]) - 0.3
        count += sum(1 for j in range(len(cands)) if j != i and float(nga[i] @ cands[j]) > thr)
    loss_fn = InfoNCE(temperature=0.2, guide_margin=0.3)
    loss_fn(a, p, n, guide={"anchor": ga, "positive": gp, "negative": gn})
    assert count > 0 and loss_fn.last_guide_masked == pytest.approx(count / len(a))
    # a margin so negative that nothing passes the threshold: the plain loss
    none = InfoNCE(temperature=0.2, guide_margin=-10.0)(a, p, n, guide={"anchor": ga, "positive": gp, "negative": gn})
    torch.testing.assert_close(none, plain)


def test_the_own_positive_is_never_masked():
    a, p, _, _, _, _ = _inputs(K=0)
    ones = torch.ones_like(a)  # the guide rates everything identical: every candidate is a false negative
    loss = InfoNCE(temperature=0.2, guide_margin=1.0)(a, p, guide={"anchor": ones, "positive": ones})
    assert float(loss) == pytest.approx(0.0, abs=1e-6)  # only the positive is left in each softmax


def test_rows_of_a_gathered_batch_sum_to_the_whole():
    """What each process computes (its rows against all candidates) adds up to the one-process loss."""
    a, p, n, ga, gp, gn = _inputs(B=6, K=2)
    loss_fn = InfoNCE(temperature=0.2, symmetric=True, same_side_negatives=True, guide_margin=0.2)
    g = {"anchor": ga, "positive": gp, "negative": gn}
    whole = loss_fn(a, p, n, guide=g)
    parts = loss_fn(a, p, n, guide=g, rows=slice(0, 2)) * 2 + loss_fn(a, p, n, guide=g, rows=slice(2, 6)) * 4
    torch.testing.assert_close(parts / 6, whole)


def test_chunked_guided_loss_is_the_same():
    a, p, n, ga, gp, gn = _inputs(B=6, K=2)
    g = {"anchor": ga, "positive": gp, "negative": gn}
    whole = InfoNCE(temperature=0.2, same_side_negatives=True, guide_margin=0.2)(a, p, n, guide=g)
    chunked = InfoNCE(temperature=0.2, same_side_negatives=True, guide_margin=0.2, chunk_size=4)(a, p, n, guide=g)
    torch.testing.assert_close(chunked, whole)


def test_bad_guide_inputs_are_clear_errors():
    a, p, n, ga, gp, gn = _inputs(K=2)
    with pytest.raises(ValueError, match="no 'negative'"):
        InfoNCE()(a, p, n, guide={"anchor": ga, "positive": gp})
    with pytest.raises(ValueError, match="one row per pair"):
        InfoNCE()(a, p, guide={"anchor": ga[:3], "positive": gp})
    with pytest.raises(ConfigError, match="guide_margin_strategy"):
        InfoNCE(guide_margin_strategy="percent")


# -- sentence-transformers' GISTEmbedLoss ---------------------------------------------------------------
GIST_TEXTS = {
    "anchor": [
        "how do cats sleep",
        "how do kittens sleep",
        "what is a river delta",
        "where do rivers end",
        "how does an engine start",
        "bread recipe with yeast",
    ],
    "positive": [
        "cats sleep most of the day",
        "kittens sleep a lot",
        "a delta forms where a river meets the sea",
        "rivers end in a sea or a lake",
        "a starter motor turns the engine",
        "mix flour, water and yeast",
    ],
    "negative": [
        "dogs bark at night",
        "cats hunt mice",
        "mountains are high",
        "a lake is still water",
        "cars need fuel",
        "cakes need sugar",
    ],
}


@pytest.mark.parametrize(
    "contrast_anchors,with_negative,margin,strategy,tau",
    [
        (True, True, 0.0, "absolute", 0.01),  # ST's defaults (but contrast_positives=False)
        (False, False, 0.1, "absolute", 0.05),
        (True, False, 0.1, "absolute", 0.05),
        (False, True, 0.2, "relative", 0.05),
    ],
)
def test_equals_sentence_transformers_gistembed_loss(
    minilm_path, contrast_anchors, with_negative, margin, strategy, tau
):
    """Same model, same guide (a frozen copy), same batch: anycl's guided InfoNCE (ST's default temperature 0.01,
    same_side_negatives ⇔ contrast_anchors) gives ST's GISTEmbedLoss value (contrast_positives=False:
    ST's positive–positive block in the anchor's row has no anycl counterpart)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

    from anycl.api import build_model
    from anycl.training.guide import Guide

    sides = ["anchor", "positive"] + (["negative"] if with_negative else [])
    st = SentenceTransformer(minilm_path, device="cpu")
    st_guide = SentenceTransformer(minilm_path, device="cpu")
    st.eval()
    st_guide.eval()
    gist = GISTEmbedLoss(
        st,
        st_guide,
        temperature=tau,
        margin=margin,
        margin_strategy=strategy,
        contrast_anchors=contrast_anchors,
        contrast_positives=False,
    )
    with torch.no_grad():
        want = gist([st.preprocess(GIST_TEXTS[s]) for s in sides], None)

    model = build_model({s: "text" for s in ("anchor", "positive", "negative")}, model=minilm_path, head=None)
    model.eval()
    guide = Guide(build_model({s: "text" for s in ("anchor", "positive", "negative")}, model=minilm_path, head=None))
    adapter = model.tower("anchor").adapter
    batch = {s: adapter.collate(GIST_TEXTS[s]) for s in sides}
    batch["views"] = {s: GIST_TEXTS[s] for s in sides}
    with torch.no_grad():
        emb = model(batch_features := {s: batch[s] for s in sides}, train=False)
        g = guide.embed(batch)
    assert set(batch_features) == set(g)
    loss_fn = InfoNCE(
        temperature=tau, same_side_negatives=contrast_anchors, guide_margin=margin, guide_margin_strategy=strategy
    )
    neg = emb["negative"].unsqueeze(1) if with_negative else None
    gneg = g["negative"].unsqueeze(1) if with_negative else None
    got = loss_fn(
        emb["anchor"], emb["positive"], neg, guide={"anchor": g["anchor"], "positive": g["positive"], "negative": gneg}
    )
    assert float(got) == pytest.approx(float(want), rel=1e-4, abs=1e-4)
    # the batch holds near-duplicates: the guide masks some of them, so the value tests the masking
    plain = InfoNCE(temperature=tau, same_side_negatives=contrast_anchors)(emb["anchor"], emb["positive"], neg)
    if margin > 0:
        assert float(plain) > float(got) + 1e-3


# -- through fit: GradCache, the start copy, options -----------------------------------------------------
def test_fit_with_guide_gradcache_equals_uncached():
    rows = toy_rows(24, negatives=2)
    opts = dict(
        modality="toyvec",
        batch_size=8,
        epochs=2,
        progress=False,
        seed=3,
        lr=1e-2,
        guide="start",
        guide_margin=0.1,
        loss_options={"same_side_negatives": True, "symmetric": True},
        mixed_precision="no",  # the equality with GradCache is fp32's ("auto" may pick bf16)
    )
    plain = anycl.fit(rows, **opts)
    cached = anycl.fit(rows, gradcache_mini_batch=3, **opts)
    a, b = plain.state_dict(), cached.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in cached.trainer.history] == pytest.approx(
        [h["loss"] for h in plain.trainer.history], rel=1e-4
    )
    # the guide ran once per batch (not per mini-batch) and really changed training
    assert cached.trainer.guide.calls == cached.trainer.global_step
    masked = [h["guide_masked"] for h in plain.trainer.history]
    assert masked == pytest.approx([h["guide_masked"] for h in cached.trainer.history]) and max(masked) > 0
    unguided = anycl.fit(rows, **{k: v for k, v in opts.items() if not k.startswith("guide")})
    assert any(not torch.allclose(unguided.state_dict()[k], a[k]) for k in a)


def test_start_guide_is_a_frozen_copy_of_the_starting_weights():
    from anycl.api import build_model
    from anycl.training.guide import make_guide

    model = build_model({s: "toyvec" for s in ("anchor", "positive", "negative")}, head=None)
    guide = make_guide("start", model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(1.0)
    for k, v in guide.model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert not any(prm.requires_grad for prm in guide.model.parameters())


def test_a_trained_model_guides_without_being_changed():
    rows = toy_rows(16, negatives=1)
    base = dict(modality="toyvec", batch_size=8, epochs=1, progress=False)
    first = anycl.fit(rows, **base)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    second = anycl.fit(rows, guide=first, guide_margin=0.3, seed=1, **base)
    guide = second.trainer.guide
    assert not guide.reuse_features and guide.calls == second.trainer.global_step
    assert all(p.requires_grad for p in first.parameters())  # the caller's model is not frozen
    for k, v in first.state_dict().items():
        torch.testing.assert_close(v, before[k])
        torch.testing.assert_close(guide.model.state_dict()[k], before[k])


def test_fit_guide_option_errors():
    rows = toy_rows(16)
    base = dict(modality="toyvec", batch_size=8, epochs=1, progress=False)
    with pytest.raises(ConfigError, match="does not"):
        anycl.fit(rows, loss="triplet", guide="start", **base)
    with pytest.raises(ConfigError, match="need guide="):
        anycl.fit(rows, guide_margin=0.1, **base)
    with pytest.raises(ConfigError, match="guide must be"):
        anycl.fit(rows, guide=3, **base)
    with pytest.raises(ConfigError, match="guide_margin_strategy"):
        anycl.fit(rows, guide="start", guide_margin_strategy="percent", **base)
    with pytest.raises(ConfigError, match="sentence-transformers model can guide text models only"):
        anycl.fit(rows, guide="/no/such/model", **base)


def test_fit_text_with_a_sentence_transformers_guide(minilm_path, text_pairs):
    """A guide given by path collates the loaded texts itself (its own tokenizer)."""
    model = anycl.fit(
        text_pairs[:16],
        modality="text",
        model=minilm_path,
        guide=minilm_path,
        guide_margin=0.05,
        batch_size=8,
        epochs=1,
        progress=False,
        max_steps=1,
    )
    assert model.trainer.guide.calls == 1 and not model.trainer.guide.reuse_features


# -- the guide's rule at mining time ------------------------------------------------------------------
def _table_model(table):
    """A callable embedder over item names "x0", "x1", ... looked up in ``table``."""
    return lambda items: table[[int(t[1:]) for t in items]]


@pytest.mark.parametrize("margin,strategy", [(0.0, "absolute"), (0.2, "absolute"), (0.3, "relative")])
def test_mining_guide_filter_matches_a_loop(margin, strategy):
    from anycl.mining.mine import mine_hard_negatives

    g = torch.Generator().manual_seed(4)
    n_q, n_d = 6, 14
    emb = F.normalize(torch.randn(n_q + n_d, 5, generator=g), dim=-1)
    gemb = F.normalize(emb + 0.7 * torch.randn(n_q + n_d, 5, generator=g), dim=-1)
    pairs = [(f"x{i}", f"x{n_q + i}") for i in range(n_q)]  # query i's positive is document n_q + i
    docs = [f"x{n_q + j}" for j in range(n_d)]
    rows, stats = mine_hard_negatives(
        _table_model(emb),
        pairs,
        corpus=docs,
        num_negatives=2,
        range_max=8,
        on_short="drop",
        verbose=False,
        guide=_table_model(gemb),
        guide_margin=margin,
        guide_margin_strategy=strategy,
    )
    want, guide_dropped = {}, 0
    for i in range(n_q):
        pos = n_q + i
        ranked = sorted((j for j in range(n_q, n_q + n_d) if j != pos), key=lambda j: -float(emb[i] @ emb[j]))[:8]
        gp = float(gemb[i] @ gemb[pos])
        thr = gp - margin if strategy == "absolute" else gp - abs(gp) * margin
        kept = [j for j in ranked if float(gemb[i] @ gemb[j]) <= thr]
        guide_dropped += len(ranked) - len(kept)
        if len(kept) >= 2:
            want[f"x{i}"] = [f"x{j}" for j in kept[:2]]
    got = {r["anchor"]: [r["negative_1"], r["negative_2"]] for r in rows}
    assert got == want
    assert stats.filtered["guide"] == guide_dropped > 0
    assert "guide" in str(stats)


def test_mined_sampler_guide_filter_and_range_min_schedule_through_fit(capsys):
    rows = toy_rows(32)
    model = anycl.fit(
        rows,
        modality="toyvec",
        batch_size=8,
        epochs=1,
        progress=False,
        seed=2,
        guide="start",
        guide_margin=0.5,
        sampler="mined",
        sampler_options={
            "num_negatives": 1,
            "relative_margin": None,
            "refresh_every": 1,
            "guide_filter": True,
            "range_min_schedule": (0, 3),
            "range_max": 10,
        },
    )
    hist = model.trainer.sampler.history
    total = model.trainer.global_step
    assert [h["range_min"] for h in hist] == [round(3 * h["step"] / total) for h in hist]
    assert hist[0]["range_min"] == 0 and hist[-1]["range_min"] == round(3 * (total - 1) / total)
    assert all("guide" in h["filtered"] for h in hist) and sum(h["filtered"]["guide"] for h in hist) > 0
    out = capsys.readouterr().out
    assert "(range_min 0)" in out and "guide" in out
    # the frozen guide's embeddings of rows and corpus were computed once and reused
    assert model.trainer.sampler._guide_cache["sizes"] == (32, 32)


def test_mined_sampler_guide_options_errors():
    rows = toy_rows(16)
    base = dict(modality="toyvec", batch_size=8, epochs=1, progress=False, sampler="mined")
    with pytest.raises(ConfigError, match="guide_filter needs"):
        anycl.fit(rows, sampler_options={"guide_filter": True}, **base)
    for bad in [(1,), (3, -1), "0-3", (0, 2.5)]:
        with pytest.raises(ConfigError, match="range_min_schedule"):
            anycl.fit(rows, sampler_options={"range_min_schedule": bad}, **base)
    with pytest.raises(ConfigError, match="not both"):
        anycl.fit(rows, sampler_options={"range_min_schedule": (0, 2), "range_min": 1}, **base)
    with pytest.raises(ConfigError, match="holds fewer"):
        anycl.fit(rows, sampler_options={"range_min_schedule": (0, 10), "range_max": 10}, **base)


def test_resumed_run_with_a_start_guide_ends_with_the_uninterrupted_weights(tmp_path):
    """The "start" guide is the starting model on resume too (not the checkpoint's weights)."""
    from anycl.training.checkpoint import complete_checkpoints

    opts = dict(
        modality="toyvec",
        batch_size=8,
        epochs=2,
        progress=False,
        log_with=None,
        seed=1,
        guide="start",
        guide_margin=0.4,
        loss_options={"same_side_negatives": True},
    )
    rows = toy_rows(24, negatives=1)
    full = anycl.fit(rows, output_dir=str(tmp_path / "a"), checkpoint_every=2, keep_checkpoints=None, **opts)
    root = tmp_path / "a" / "checkpoints"
    assert [s for s, _ in complete_checkpoints(root)] == [2, 4, 6]
    again = anycl.fit(rows, output_dir=str(tmp_path / "a"), resume_from=str(root / "step-4"), **opts)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    assert max(h["guide_masked"] for h in full.trainer.history) > 0

"""Matryoshka: the wrapped loss against its formula, GradCache's gradients against the uncached step,
``fit`` end to end (per-width evaluation, ``encode(truncate_dim=...)``, the CLI) and its bad inputs."""

import pytest
import torch
from test_gradcache import assert_grads_close, build_batch, cached_grads, full_batch_grads, text_triplets  # noqa: E402
from toy_modality import toy_rows  # noqa: F401  (registers "toyvec")

import anycl
from anycl import losses as loss_registry
from anycl.api import build_model
from anycl.errors import ConfigError
from anycl.losses.matryoshka import MatryoshkaLoss
from anycl.training.trainer import TrainingModule


def formula(loss, dims, weights, a, p, n=None, labels=None):
    """Σ_k w_k · loss(prefix d_k of each embedding, L2-normalised), written out with explicit loops."""
    total = torch.zeros(())
    for d, w in zip(dims, weights):
        cut = [None if x is None else x[..., :d] / x[..., :d].norm(dim=-1, keepdim=True) for x in (a, p, n)]
        out = loss(cut[0], cut[1], cut[2], labels)
        total = total + w * (out["loss"] if isinstance(out, dict) else out)  # vicreg returns its terms too
    return total


@pytest.mark.parametrize(
    "name,opts,with_neg,with_labels",
    [
        ("infonce", {"temperature": 0.1}, True, False),
        ("infonce", {"temperature": 0.05, "symmetric": True}, False, True),
        ("triplet", {}, True, False),
        ("supcon", {}, False, True),
        ("vicreg", {}, False, False),
    ],
)
def test_wrapped_loss_equals_formula(name, opts, with_neg, with_labels):
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    n = torch.randn(8, 2, 32, generator=g) if with_neg else None
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]) if with_labels else None
    inner = loss_registry.get(name, **opts)
    dims, weights = [32, 16, 8, 4], [1.0, 0.5, 2.0, 0.25]
    out = MatryoshkaLoss(inner, dims, weights)(a, p, n, labels)
    ref = formula(inner, dims, weights, a, p, n, labels)
    torch.testing.assert_close(out["loss"], ref, rtol=1e-5, atol=1e-6)
    for d in dims:  # the per-width terms are logged
        torch.testing.assert_close(out[f"loss@{d}"], formula(inner, [d], [1.0], a, p, n, labels))
    # the check has teeth: other weights give another sum
    assert not torch.allclose(MatryoshkaLoss(inner, dims, [1, 1, 1, 1])(a, p, n, labels)["loss"], ref)


def test_gradients_equal_formula_gradients():
    inner = loss_registry.get("infonce", temperature=0.05)
    a = torch.randn(6, 16, requires_grad=True)
    p = torch.randn(6, 16, requires_grad=True)
    MatryoshkaLoss(inner, [16, 8, 2])(a, p)["loss"].backward()
    ga, gp = a.grad.clone(), p.grad.clone()
    a.grad = p.grad = None
    formula(inner, [16, 8, 2], [1, 1, 1], a, p).backward()
    torch.testing.assert_close(ga, a.grad)
    torch.testing.assert_close(gp, p.grad)


@pytest.mark.parametrize("mini", [1, 3, 64])
def test_gradcache_equals_uncached_toy(mini):
    torch.manual_seed(0)
    model = build_model({s: "toyvec" for s in ("anchor", "positive", "negative")})
    module = TrainingModule(model, MatryoshkaLoss(loss_registry.get("infonce", temperature=0.3), [8, 4, 2]))
    batch = build_batch(model, toy_rows(10, negatives=2), 2)
    ref = full_batch_grads(module, batch)
    got = cached_grads(module, batch, mini)
    assert got[0] == pytest.approx(ref[0], rel=1e-6)
    assert_grads_close(got[2], ref[2])
    assert set(got[1]) == {"loss@8", "loss@4", "loss@2"}


def test_gradcache_equals_uncached_text(minilm_path):
    model = build_model(
        {s: "text" for s in ("anchor", "positive", "negative")},
        model=minilm_path,
        adapter_options={"max_seq_length": 32},
    )
    module = TrainingModule(model, MatryoshkaLoss(loss_registry.get("infonce"), [384, 128, 32], [1, 1, 2]))
    batch = build_batch(model, text_triplets(), 1)
    module.eval()  # dropout off: the full-batch step is the exact reference
    ref = full_batch_grads(module, batch)
    got = cached_grads(module, batch, mini=4)
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    assert_grads_close(got[2], ref[2])


def test_losses_with_width_tied_state_are_refused():
    for name in ("byol", "simsiam", "moco"):
        with pytest.raises(ConfigError, match="cannot wrap"):
            MatryoshkaLoss(loss_registry.get(name), [8, 4])


@pytest.mark.parametrize(
    "dims,weights,match",
    [
        ([64, 128], None, "strictly descending"),
        ([128, 128], None, "strictly descending"),
        ([], None, "non-empty"),
        ([128, 0], None, "positive ints"),
        ("128", None, "list of ints"),
        ([128, 64], [1.0], "2 matryoshka_dims"),
        ([128, 64], [1.0, -1.0], "non-negative"),
        ([128, 64], [0, 0], "not all 0"),
    ],
)
def test_bad_dims_are_clear_errors(text_pairs, minilm_path, dims, weights, match):
    with pytest.raises(ConfigError, match=match):
        anycl.fit(text_pairs, modality="text", model=minilm_path, matryoshka_dims=dims, matryoshka_weights=weights)


def test_dims_above_the_width_and_weights_alone_are_errors(text_pairs, minilm_path):
    with pytest.raises(ConfigError, match="above the embedding width 384"):
        anycl.fit(text_pairs, modality="text", model=minilm_path, matryoshka_dims=[512, 64], max_steps=1)
    with pytest.raises(ConfigError, match="needs matryoshka_dims"):
        anycl.fit(text_pairs, modality="text", model=minilm_path, matryoshka_weights=[1.0])


def test_fit_reports_every_width_and_truncated_encode(text_pairs, minilm_path, tmp_path):
    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        batch_size=8,
        max_steps=2,
        matryoshka_dims=[384, 128, 64],
        matryoshka_weights=[1, 1, 2],
        eval_dataset=text_pairs,
        keep_best="ndcg@10_dim64",
        mixed_precision="no",  # evaluation during training computes as training does: fp32, as the reference below
        progress=False,
        log_with=None,
        collapse_watch=False,
        adapter_options={"max_seq_length": 32},
    )
    last = model.trainer.eval_history[-1]
    for d in (128, 64):
        assert f"ndcg@10_dim{d}" in last and f"recall@1_dim{d}" in last
    assert "ndcg@10_dim384" not in last and "ndcg@10" in last
    # the per-width metrics are those of the truncated, re-normalised embeddings
    from anycl.data.inputs import to_rows
    from anycl.evaluation import RetrievalEvaluator

    ev = RetrievalEvaluator.from_pairs(to_rows(text_pairs))
    q = model.encode(ev.queries, truncate_dim=64)
    c = model.encode(ev.corpus, truncate_dim=64)
    from anycl.evaluation import retrieval_metrics

    assert retrieval_metrics(q, c, ev.relevant)["ndcg@10"] == pytest.approx(last["ndcg@10_dim64"], abs=1e-6)
    logged = model.trainer.history[0]
    assert {"loss@384", "loss@128", "loss@64"} <= set(logged)
    assert model.info["matryoshka"] == {"dims": [384, 128, 64], "weights": [1.0, 1.0, 2.0]}
    model.save(str(tmp_path / "m"))
    assert anycl.load(str(tmp_path / "m")).info["matryoshka"]["dims"] == [384, 128, 64]


def test_cli_fit_takes_matryoshka_dims_and_embed_truncates(tmp_path, minilm_path):
    import numpy as np
    import pandas as pd

    from anycl.cli import main

    rows = [
        {"anchor": f"question {i} about topic {i % 5}", "positive": f"answer {i} on topic {i % 5}"} for i in range(16)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    out = tmp_path / "out"
    rc = main(
        [
            "fit",
            str(tmp_path / "pairs.csv"),
            "--modality",
            "text",
            "--model",
            minilm_path,
            "--max-steps",
            "1",
            "--batch-size",
            "8",
            "--matryoshka-dims",
            "[384, 64]",
            "--prompts",
            '{"anchor": "query: "}',
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    model = anycl.load(str(out))
    assert model.info["matryoshka"]["dims"] == [384, 64] and model.prompts == {"anchor": "query: "}
    assert (
        main(
            [
                "embed",
                str(out),
                str(tmp_path / "pairs.csv"),
                "-o",
                str(tmp_path / "e.npy"),
                "--truncate-dim",
                "64",
                "--precision",
                "int8",
                "--prompt-name",
                "anchor",
                "--quiet",
            ]
        )
        == 0
    )
    got = np.load(tmp_path / "e.npy")
    assert got.dtype == np.int8 and got.shape == (16, 64)
    ref = model.encode(
        [r["anchor"] for r in rows], truncate_dim=64, precision="int8", prompt_name="anchor", convert_to_numpy=True
    )
    np.testing.assert_array_equal(got, ref)

"""Text fine-tuning through fit: mined + re-mined negatives, retrieval metrics, best checkpoint, export."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.errors import ConfigError, DataError
from anycl.evaluation import retrieval_metrics


def reference_metrics(q, c, relevant):
    """Independent reference: full ranking by numpy argsort; sklearn for nDCG@10 and average precision."""
    from sklearn.metrics import average_precision_score, ndcg_score

    sim = (q @ c.T).numpy()
    out = {"ndcg@10": [], "mrr@10": [], "map@100": [], "recall@1": [], "recall@10": []}
    for i, rel in enumerate(relevant):
        y = np.zeros(sim.shape[1])
        y[list(rel)] = 1
        out["ndcg@10"].append(ndcg_score(y[None], sim[i][None], k=10))
        order = np.argsort(-sim[i])
        first = next(r for r, d in enumerate(order) if d in rel)
        out["mrr@10"].append(1 / (first + 1) if first < 10 else 0.0)
        out["map@100"].append(average_precision_score(y, sim[i]))  # corpus < 100: full AP
        for k in (1, 10):
            out[f"recall@{k}"].append(len(set(order[:k].tolist()) & rel) / len(rel))
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_retrieval_metrics_match_an_independent_reference():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(25, 16, generator=g), dim=-1)
    c = F.normalize(torch.randn(70, 16, generator=g), dim=-1)
    c[:25] = F.normalize(q + 0.9 * torch.randn(25, 16, generator=g), dim=-1)  # make hits plausible
    relevant = [{i} | ({(i * 7) % 70, 30 + i} if i % 3 == 0 else set()) for i in range(25)]
    ours = retrieval_metrics(q, c, relevant, ks=(1, 10, 100))
    ref = reference_metrics(q, c, relevant)
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k


def test_fit_with_mined_sampler_remines_and_uses_negatives(minilm_path, text_pairs):
    seen = []

    class Spy:
        def on_step_end(self, trainer, step, logs):
            seen.append(trainer.builder.negative_columns)

    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        sampler="mined",
        sampler_options={"num_negatives": 2, "refresh_every": 2, "verbose": False, "relative_margin": 0.0},
        batch_size=8,
        max_steps=3,
        progress=False,
        log_with=None,
        callbacks=[Spy()],
        adapter_options={"max_seq_length": 24},
    )
    sampler = model.trainer.sampler
    assert [h["step"] for h in sampler.history][:2] == [0, 2]
    assert seen[0] == ["negative_1", "negative_2"]
    assert len(sampler.negatives) == len(text_pairs)
    for row, negs in zip(text_pairs, sampler.negatives):
        assert len(negs) == 2 and row["positive"] not in negs  # never a row's own positive
    rows = sampler.rows_for(anycl.data.to_rows(text_pairs), [0, 1])
    assert rows[0]["negative_1"] == sampler.negatives[0][0]


def test_mined_sampler_resumes_with_its_negatives_and_mines_in_the_training_precision(
    minilm_path, text_pairs, tmp_path
):
    from anycl.training.checkpoint import complete_checkpoints

    opts = dict(
        modality="text",
        model=minilm_path,
        sampler="mined",
        batch_size=8,
        epochs=2,
        progress=False,
        log_with=None,
        seed=3,
        adapter_options={"max_seq_length": 24},
        sampler_options={"num_negatives": 1, "refresh_every": 2, "verbose": False},
        mixed_precision="no",  # fp32 given: the default "auto" is bf16 on a CPU with bf16 units
    )
    full = anycl.fit(text_pairs, output_dir=str(tmp_path / "a"), checkpoint_every=2, keep_checkpoints=None, **opts)
    steps = [s for s, _ in complete_checkpoints(tmp_path / "a" / "checkpoints")]
    assert 2 in steps and full.trainer.sampler.mining_precision == "fp32"
    again = anycl.fit(
        text_pairs,
        output_dir=str(tmp_path / "a"),
        overwrite=True,
        resume_from=str(tmp_path / "a" / "checkpoints" / "step-2"),
        **opts,
    )
    assert again.trainer.sampler.negatives == full.trainer.sampler.negatives
    for k, v in full.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    bf16 = anycl.fit(
        text_pairs, max_steps=1, **{**opts, "mixed_precision": "bf16", "sampler_options": {"verbose": False}}
    )
    assert bf16.trainer.sampler.mining_precision == "bf16"


def test_mined_sampler_keeps_negatives_apart_from_positives_in_a_batch(text_pairs):
    from anycl.sampling.mined import MinedNegativeSampler

    rows = anycl.data.to_rows(text_pairs)
    s = MinedNegativeSampler(num_negatives=1, seed=0)
    s.set_key_functions({"anchor": str, "positive": str})
    s.negatives = [[text_pairs[(i + 1) % len(text_pairs)]["positive"]] for i in range(len(text_pairs))]
    for batch in s.plan(rows, 0, 8):
        pos = {text_pairs[i]["positive"] for i in batch}
        for i in batch:
            assert s.negatives[i][0] not in pos


def test_mined_sampler_bad_input(minilm_path, text_pairs):
    with pytest.raises(ConfigError, match="pairs"):
        anycl.fit(
            [f"sentence {i}" for i in range(8)],
            modality="text",
            model=minilm_path,
            sampler="mined",
            batch_size=4,
            max_steps=1,
            progress=False,
            log_with=None,
        )
    with pytest.raises(DataError, match="corpus has"):
        anycl.fit(
            text_pairs[:3],
            modality="text",
            model=minilm_path,
            sampler="mined",
            sampler_options={"num_negatives": 3},
            batch_size=2,
            max_steps=1,
            progress=False,
            log_with=None,
        )
    with pytest.raises(ConfigError, match="refresh_every"):
        anycl.samplers.get("mined", refresh_every=0)


def test_keep_best_restores_the_best_evaluation_and_export_matches_sentence_transformers(
    minilm_path, text_pairs, tmp_path
):
    from sentence_transformers import SentenceTransformer

    values = iter([0.5, 0.6, 0.9, 0.1])  # steps 0 (the baseline), 1, 2, 3
    snapshots = []

    def evaluator(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": next(values)}

    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        batch_size=8,
        max_steps=3,
        eval_every=1,
        eval_dataset=evaluator,
        keep_best="score",
        progress=False,
        log_with=None,
        output_dir=str(tmp_path / "run"),
        adapter_options={"max_seq_length": 24},
    )
    assert model.info["best"] == {"metric": "score", "value": 0.9, "step": 2}
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[2][k])
    assert (tmp_path / "run" / "best" / "anycl_config.json").exists() or any((tmp_path / "run" / "best").iterdir())

    texts = ["what do we know about cats?", "a completely different sentence", "chess"]
    path = model.export_sentence_transformers(str(tmp_path / "st"))
    st = SentenceTransformer(path, device="cpu")
    ours = model.encode(texts)
    theirs = F.normalize(st.encode(texts, convert_to_tensor=True).float(), dim=-1)
    assert torch.allclose(ours, theirs, atol=1e-5)
    # the saved anycl model holds the same format under towers/text
    saved = SentenceTransformer(str(tmp_path / "run" / "model" / "towers" / "text"), device="cpu")
    assert torch.allclose(ours, F.normalize(saved.encode(texts, convert_to_tensor=True).float(), dim=-1), atol=1e-5)


def test_keep_best_needs_an_evaluation_and_a_known_metric(minilm_path, text_pairs):
    with pytest.raises(ConfigError, match="eval_dataset"):
        anycl.fit(text_pairs, modality="text", model=minilm_path, keep_best="ndcg@10", max_steps=1, progress=False)
    with pytest.raises(ConfigError, match="not a metric"):
        anycl.fit(
            text_pairs,
            modality="text",
            model=minilm_path,
            batch_size=8,
            max_steps=1,
            eval_every=1,
            eval_dataset=lambda m: {"a": 1.0},
            keep_best="ndcg@10",
            progress=False,
            log_with=None,
        )

"""fit(probe=...): online kNN / linear probes against a brute-force kNN, the logs they reach, bad options."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
from toy_modality import toy_rows  # noqa: F401  (registers "toyvec")

import anycl
from anycl.errors import ConfigError, DataError
from anycl.evaluation.probe import probe_evaluator, probe_options

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = dict(modality="toyvec", batch_size=8, max_steps=2, progress=False, seed=5, lr=1e-2)


def _labelled(n, seed):
    return [{"anchor": r["anchor"], "label": ["a", "b", "c"][i % 3]} for i, r in enumerate(toy_rows(n, seed=seed))]


def _brute_knn(train_emb, train_labels, test_emb, test_labels, k, tau, leave_one_out=False):
    """Reference: every cosine by a loop, sorted, the top k vote exp(cos/tau) (or 1 each; ties to the nearest)."""
    hits = 0
    for i, q in enumerate(test_emb):
        sims = [
            (float(torch.dot(q, c) / (q.norm() * c.norm())), j)
            for j, c in enumerate(train_emb)
            if not (leave_one_out and j == i)
        ]
        top = sorted(sims, key=lambda s: -s[0])[:k]
        votes = defaultdict(float)
        for rank, (s, j) in enumerate(top):
            votes[train_labels[j]] += math.exp(s / tau) if tau else 1.0 - 0.1 * rank / max(k - 1, 1)
        hits += max(votes, key=votes.get) == test_labels[i]
    return hits / len(test_emb)


@pytest.fixture(scope="module")
def model():
    return anycl.fit(toy_rows(16), **TOY)


@pytest.mark.parametrize("tau", [0.07, None])
def test_probe_on_train_test_sets_matches_brute_force_knn(model, tau):
    train, test = _labelled(30, 1), _labelled(12, 2)
    ev = probe_evaluator({"train": train, "test": test}, {"k": 5, "temperature": tau})
    got = ev(model)
    tr = model.encode([r["anchor"] for r in train], convert_to_tensor=True).float()
    te = model.encode([r["anchor"] for r in test], convert_to_tensor=True).float()
    ref = _brute_knn(tr, [r["label"] for r in train], te, [r["label"] for r in test], 5, tau)
    assert got == {"knn@5_accuracy": pytest.approx(ref)}
    assert ev.primary_metric == "knn@5_accuracy"


def test_probe_on_one_set_is_leave_one_out(model):
    data = _labelled(24, 3)
    got = probe_evaluator(data, {"k": 4})(model)
    emb = model.encode([r["anchor"] for r in data], convert_to_tensor=True).float()
    labels = [r["label"] for r in data]
    assert got["knn@4_accuracy"] == pytest.approx(_brute_knn(emb, labels, emb, labels, 4, 0.07, leave_one_out=True))


def test_linear_probe_on_one_set_holds_out_a_stratified_share(model):
    ev = probe_evaluator(_labelled(30, 4), {"k": 3, "linear": True, "test_fraction": 0.3}, seed=1)
    assert len(ev.test_items) == 9 and sorted(ev.test_labels) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    out = ev(model)
    assert set(out) == {"knn@3_accuracy", "linear_probe_accuracy"} and ev.primary_metric == "linear_probe_accuracy"
    assert 0 <= out["linear_probe_accuracy"] <= 1


def test_fit_logs_the_probe_every_eval_every_steps_to_history_report_and_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = anycl.fit(
        toy_rows(16),
        eval_dataset=_labelled(18, 6),
        probe={"k": 3},
        eval_every=2,
        output_dir=str(tmp_path / "run"),
        **{**TOY, "max_steps": 4},
    )
    steps = [h["step"] for h in model.trainer.eval_history]
    assert steps == [0, 2, 4] and all("knn@3_accuracy" in h for h in model.trainer.eval_history)
    events = list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "eval/knn@3_accuracy" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("eval/knn@3_accuracy")] == [0, 2, 4]
    assert "knn@3_accuracy" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.parametrize(
    "bad,match",
    [
        ("yes", "probe must be"),
        ({"kk": 3}, "unknown probe"),
        ({"k": 0}, "k must"),
        ({"temperature": 0}, "temperature"),
        ({"linear": 1}, "linear"),
        ({"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_bad_probe_options(bad, match):
    with pytest.raises(ConfigError, match=match):
        probe_options(bad)


def test_probe_needs_labelled_eval_data():
    with pytest.raises(ConfigError, match="eval_dataset"):
        probe_evaluator(None, True)
    with pytest.raises(DataError, match="label"):
        probe_evaluator([{"anchor": [0.0] * 6, "positive": [1.0] * 6}] * 3, True)
    with pytest.raises(DataError, match="two labels"):
        probe_evaluator([{"anchor": [0.0] * 6, "label": 1}] * 3, True)
    with pytest.raises(ConfigError, match="more than"):
        probe_evaluator({"train": _labelled(6, 0), "test": _labelled(6, 1)}, {"k": 10})


def test_bad_probe_option_fails_before_any_model_is_built(monkeypatch):
    from anycl import api

    def no_model(*a, **k):
        raise AssertionError("a model was built before the probe options were checked")

    monkeypatch.setattr(api, "build_model", no_model)
    with pytest.raises(ConfigError, match="k must"):
        anycl.fit(toy_rows(16), eval_dataset=_labelled(9, 0), probe={"k": 0}, **TOY)

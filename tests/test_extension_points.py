"""The extension points (issue 28): the evaluator and export-format registries, a user's evaluator used by ``fit``
and ``anycl eval``, a user's export format called through ``model.export``, adapter capabilities in place of
modality names, and no core module comparing against a built-in modality's name."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toy_modality import DIM, ToyAdapter, toy_rows

import anycl
from anycl import cli
from anycl.errors import ConfigError, UnknownNameError
from anycl.evaluation import EVALUATORS, Evaluator, build_evaluator
from anycl.export import EXPORTS

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TOY = dict(modality="toyvec", batch_size=8, progress=False, seed=3, log_with=None)


@pytest.fixture
def clean_registries():
    """Whatever a test registers is gone after it."""
    saved = {r: dict(r._table) for r in (EVALUATORS, EXPORTS, anycl.adapters.ADAPTERS)}
    yield
    for r, table in saved.items():
        r._table.clear()
        r._table.update(table)


class MeanCosine(Evaluator):
    """A user's evaluator: the mean cosine of each anchor with its positive."""

    primary_metric = "mean_cosine"

    def __init__(self, anchors, positives, batch_size: int = 64):
        self.anchors, self.positives, self.batch_size = list(anchors), list(positives), batch_size

    @classmethod
    def from_rows(cls, rows, batch_size: int = 64):
        return cls(rows.column("anchor"), rows.column("positive"), batch_size=batch_size)

    def __call__(self, model):
        a, p = self.embed(model, [(self.anchors, None, "anchor"), (self.positives, None, "positive")])
        return {"mean_cosine": float(F.cosine_similarity(a, p).mean())}


def mean_cosine_reference(model, rows) -> float:
    """By hand: every pair's cosine from model.encode, averaged in float64."""
    a = model.encode([r["anchor"] for r in rows]).double()
    p = model.encode([r["positive"] for r in rows]).double()
    return float(np.mean([float(x @ y / (x.norm() * y.norm())) for x, y in zip(a, p)]))


# -- the evaluator registry -------------------------------------------------------------------------------------------
def test_evaluator_registry_registers_gets_and_names(clean_registries):
    assert {"retrieval", "knn", "sts", "triplet", "reranking", "classification", "probe"} <= set(
        anycl.evaluation.names()
    )
    anycl.evaluation.register("mean-cosine")(MeanCosine)
    assert "mean_cosine" in anycl.evaluation.names() and anycl.evaluators.names() == anycl.evaluation.names()
    assert MeanCosine.name == "mean_cosine"
    built = anycl.evaluation.get("mean_cosine", anchors=[[0.0]], positives=[[1.0]])
    assert isinstance(built, MeanCosine) and built.anchors == [[0.0]]
    assert anycl.evaluation.lookup("Mean-Cosine") is MeanCosine
    # every built-in is registered under its own name, in its own module
    for name in ("retrieval", "knn", "sts", "triplet", "reranking", "classification", "probe"):
        cls = anycl.evaluation.lookup(name)
        assert issubclass(cls, Evaluator) and cls.name == name
        assert cls.__module__ == f"anycl.evaluation.{ {'probe': 'linear_probe'}.get(name, name) }"


def test_evaluator_registry_errors(clean_registries):
    with pytest.raises(UnknownNameError, match=r"unknown evaluator 'sst' \(did you mean 'sts'\?\); registered"):
        anycl.evaluation.get("sst")
    with pytest.raises(ConfigError, match=r"eval_kind must be one of .* got 'tripplet' \(did you mean 'triplet'\?\)"):
        build_evaluator([{"anchor": "a", "positive": "b"}], "tripplet")
    with pytest.raises(ValueError, match="evaluator 'sts' is already registered"):
        anycl.evaluation.register("sts")(MeanCosine)
    with pytest.raises(TypeError, match="must be a subclass of anycl.evaluation.Evaluator"):
        anycl.evaluation.register("plain")(type("Plain", (), {"from_rows": classmethod(lambda cls, rows: cls())}))


# -- a user's evaluator, used ----------------------------------------------------------------------------------------
def test_a_registered_evaluator_is_used_by_fit_and_its_primary_metric_by_keep_best(clean_registries):
    anycl.evaluation.register("mean_cosine")(MeanCosine)
    eval_rows = toy_rows(12, seed=1)
    # fp32 training, so the evaluator during training computes in fp32 as the reference does (under the bf16
    # default on a CPU with bf16 units it would compute in bf16, about 1e-5 away)
    model = anycl.fit(
        toy_rows(16), eval_dataset=eval_rows, eval_kind="mean_cosine", epochs=1, mixed_precision="no", **TOY
    )
    history = model.trainer.eval_history
    assert [h["step"] for h in history] == [0, 2] and set(history[-1]) == {"step", "mean_cosine"}
    assert history[-1]["mean_cosine"] == pytest.approx(mean_cosine_reference(model, eval_rows), abs=1e-6)
    # keep_best=True watches the evaluator's primary metric
    model = anycl.fit(toy_rows(16), eval_dataset=eval_rows, eval_kind="mean_cosine", keep_best=True, epochs=1, **TOY)
    assert model.info["best"]["metric"] == "mean_cosine"


def test_a_registered_evaluator_is_used_by_anycl_eval(clean_registries, tmp_path, capsys):
    anycl.evaluation.register("mean_cosine")(MeanCosine)
    anycl.fit(toy_rows(16), max_steps=1, **TOY).save(str(tmp_path / "model"))
    eval_rows = toy_rows(10, seed=2)
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"anchor": r["anchor"], "positive": r["positive"]}) + "\n" for r in eval_rows))
    out = tmp_path / "metrics.json"
    args = ["eval", str(tmp_path / "model"), str(data), "--kind", "mean_cosine", "-q", "-o", str(out)]
    assert cli.main(args) == 0
    assert "mean_cosine: 10 rows" in capsys.readouterr().out
    expected = mean_cosine_reference(anycl.load(str(tmp_path / "model")), eval_rows)
    assert json.loads(out.read_text()) == {"mean_cosine": pytest.approx(expected, abs=1e-6)}
    # a near miss is a one-line user error that names the fix
    assert cli.main(["eval", str(tmp_path / "model"), str(data), "--kind", "mean_cosin", "-q"]) == 2
    assert "--kind must be one of" in (err := capsys.readouterr().err) and "did you mean 'mean_cosine'?" in err


# -- export formats ---------------------------------------------------------------------------------------------------
def test_a_registered_export_format_is_called_through_model_export(clean_registries, tmp_path):
    @anycl.export.register("npz-embeddings")
    def export_npz(model, path, modality=None, items=()):
        np.savez(path, embedding=model.encode(list(items), modality=modality).numpy())
        return str(path)

    assert {"onnx", "sentence_transformers", "npz_embeddings"} <= set(anycl.export.names())
    assert anycl.export.get("npz-embeddings") is export_npz
    model = anycl.fit(toy_rows(16), max_steps=1, **TOY)
    items = [r["anchor"] for r in toy_rows(5, seed=4)]
    path = model.export("npz-embeddings", str(tmp_path / "emb.npz"), items=items)
    assert path == str(tmp_path / "emb.npz")
    np.testing.assert_allclose(np.load(path)["embedding"], model.encode(items).numpy(), atol=0)
    with pytest.raises(
        UnknownNameError, match=r"unknown export format 'npz-embedding' \(did you mean 'npz_embeddings'"
    ):
        model.export("npz-embedding", str(tmp_path / "x"))
    with pytest.raises(ConfigError, match=r"has no option\(s\) \['bogus'\]; its options are \['modality', 'items'\]"):
        model.export("npz-embeddings", str(tmp_path / "x"), bogus=1)
    with pytest.raises(TypeError, match="must be a function"):
        anycl.export.register("a-class")(type("NotAFunction", (), {}))


def test_a_user_adapter_declares_what_onnx_and_the_card_need(clean_registries, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    @anycl.adapters.register("toyvec_export")
    class Declared(ToyAdapter):
        modality = "toyvec_export"
        pipeline_tag = "tabular-feature-extraction"
        onnx_input_name = "vector"

        def example_views(self):
            return [torch.linspace(-1, 1, DIM), torch.linspace(1, -1, DIM)]

    model = anycl.fit(toy_rows(16), max_steps=1, **{**TOY, "modality": "toyvec_export"})
    onnx_path = model.export("onnx", str(tmp_path / "onnx"))  # no example=: the adapter's example_views
    meta = json.loads((tmp_path / "onnx" / "anycl_onnx.json").read_text())
    assert meta["inputs"] == ["vector"] and meta["modality"] == "toyvec_export"
    x = np.asarray([r["anchor"] for r in toy_rows(7, seed=5)], dtype=np.float32)  # a batch the trace did not see
    got = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"vector": x})[0]
    np.testing.assert_allclose(got, model.encode(list(x)).numpy(), atol=1e-5)
    assert "pipeline_tag: tabular-feature-extraction" in (tmp_path / "onnx" / "README.md").read_text()
    # the plain toy adapter declares no example views: the export asks for items
    plain = anycl.fit(toy_rows(16), max_steps=1, **TOY)
    with pytest.raises(ConfigError, match="give example items to export the 'toyvec' tower"):
        plain.export("onnx", str(tmp_path / "plain"))


# -- no modality names in the core ------------------------------------------------------------------------------------
BUILT_IN = {
    anycl.adapters.TextAdapter.modality,
    anycl.adapters.AudioAdapter.modality,
    anycl.adapters.ImageAdapter.modality,
}


def modality_comparisons(source: str, names=frozenset(BUILT_IN)):
    """(line, code) of each comparison (==, !=, in, not in, is) with a built-in modality name as a string literal,
    alone or in a tuple/list/set literal."""

    def named(node) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(isinstance(e, ast.Constant) and e.value in names for e in node.elts)
        return False

    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Compare) and any(named(o) for o in (node.left, *node.comparators))
    ]


def test_the_scan_finds_what_it_looks_for():
    assert BUILT_IN == {"text", "audio", "image"}
    found = modality_comparisons(
        "a = m == 'text'\nb = 'audio' != m\nc = m in ('x', 'image')\nd = m not in {'text'}\ne = m == 'textual'"
    )
    assert [line for line, _ in found] == [1, 2, 3, 4]


def test_no_core_module_compares_against_a_built_in_modality_name():
    files = [p for p in (ROOT / "anycl").rglob("*.py") if "adapters" not in p.relative_to(ROOT / "anycl").parts]
    assert len(files) > 100 and not any("adapters" in p.parts for p in files)
    found = {str(p.relative_to(ROOT)): hits for p in files if (hits := modality_comparisons(p.read_text()))}
    assert found == {}, f"ask the adapter for a capability (adapters/base.py) instead: {found}"

"""The embedding engines (anycl.model.engines): each engine's embeddings against torch float32 within its
tolerance, ``"auto"``'s choice, the ONNX session's re-export when the weights change, the options checked with
clear errors, ``anycl embed --engine``, and mining with a fast engine finding the negatives float32 finds.

The models are built here, offline: a random-init two-layer BERT (width 32) with all-MiniLM-L6-v2's tokenizer,
and a small image CNN.
"""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from anycl import cli
from anycl.api import build_model
from anycl.errors import ConfigError
from anycl.evaluation.retrieval import RetrievalEvaluator
from anycl.mining.mine import mine_hard_negatives
from anycl.mining.options import MiningOptions
from anycl.model import engines, precision
from anycl.model.embed import embed_all, model_engine
from anycl.sampling.mined import MinedNegativeSampler

SIDES = ("anchor", "positive")
TEXTS = [f"what do we know about topic {i}? " * (i % 4 + 1) + f"item {i}" for i in range(40)]
# 1 - cosine against torch float32 each engine must stay under on these tiny models (the tolerances measured
# on all-MiniLM-L6-v2 and real text are in docs/scale.md); "onnx" is held to 1e-5 in absolute values
ONE_MINUS_COS = {"torch-bf16": 1e-2, "onnx": 1e-6, "onnx-int8": 2e-2}


@pytest.fixture(scope="module")
def tiny_bert(minilm_path, tmp_path_factory):
    """The folder of a random-init two-layer BERT of width 32 with the real tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path)
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    bert = transformers.BertModel(config)
    with torch.no_grad():  # words far apart (BERT's init, std 0.02, makes every text's embedding alike)
        bert.embeddings.word_embeddings.weight.normal_(0, 1)
    bert.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def tiny_text(tiny_bert):
    """The tiny BERT as an anycl text model."""
    return build_model({s: "text" for s in SIDES}, model=tiny_bert, adapter_options={"max_seq_length": 32})


def _one_minus_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((1 - (a * b).sum(-1)).abs().max())


# -- the hardware check ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,expected", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx512f", "avx2"}, False)]
)
def test_bf16_supported_reads_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "_torch_flags", set)
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: set(flags))
    assert precision.cpu_has_bf16() is expected
    assert precision.bf16_supported("cpu") is expected and precision.bf16_supported() is expected
    assert precision.bf16_supported("mps") is False


def test_the_real_cpu_flags_are_read():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    assert precision.cpu_has_bf16() == any(f in flags for f in ("avx512_bf16", "amx_bf16"))


# -- each engine against torch float32 -------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["torch-bf16", "onnx", "onnx-int8"])
def test_text_engines_match_torch_fp32_within_their_tolerance(tiny_text, engine):
    pytest.importorskip("onnxruntime")
    ref = tiny_text.encode(TEXTS, batch_size=8)
    got = tiny_text.encode(TEXTS, batch_size=8, engine=engine)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert _one_minus_cos(ref, got) <= ONE_MINUS_COS[engine]
    if engine == "onnx":
        assert float((ref - got).abs().max()) <= 1e-5
    assert not torch.equal(ref, tiny_text.encode(TEXTS, batch_size=8, engine="torch-bf16"))  # bf16 did run


def test_engines_keep_encodes_other_options(tiny_text):
    pytest.importorskip("onnxruntime")
    ref = tiny_text.encode(TEXTS[:6], normalize=False, truncate_dim=16, precision="int8", convert_to_numpy=True)
    got = tiny_text.encode(
        TEXTS[:6], normalize=False, truncate_dim=16, precision="int8", convert_to_numpy=True, engine="onnx"
    )
    assert got.dtype == ref.dtype == np.int8 and got.shape == (6, 16)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    one = tiny_text.encode(TEXTS[0], engine="onnx")
    assert one.shape == (tiny_text.embedding_width("text"),)


class _Bf16Casts(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the float32 -> bfloat16 copies of tensors shaped like one of ``shapes`` (the weights)."""

    def __init__(self, shapes):
        super().__init__()
        self.shapes, self.count = set(shapes), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
            if args[0].dtype == torch.float32 and tuple(args[0].shape) in self.shapes:
                self.count += 1
        return func(*args, **kwargs)


def test_bf16_casts_the_weights_once_per_encode_call_not_once_per_batch(tiny_text):
    """torch-bf16 keeps one autocast scope over the batches, so each linear weight is cast to bfloat16 once per
    call: four batches cast what one batch casts (autocast's cache), and the embeddings are those of a scope per
    batch to the bit."""
    tower = tiny_text.tower("text")
    shapes = [tuple(m.weight.shape) for m in tower.modules() if isinstance(m, torch.nn.Linear)]
    counts = {}
    for n in (8, 32):
        with _Bf16Casts(shapes) as casts:
            tiny_text.encode(TEXTS[:n], batch_size=8, engine="torch-bf16")
        counts[n] = casts.count
    assert counts[8] > 0 and counts[32] == counts[8]
    texts = sorted(TEXTS[:32], key=len, reverse=True)  # encode's own order: its batches are the slices below
    per_batch = []
    for start in range(0, 32, 8):  # the reference: each batch in an autocast scope of its own
        with torch.autocast("cpu", dtype=torch.bfloat16):
            per_batch.append(tiny_text.encode(texts[start : start + 8], batch_size=8, engine="torch"))
    assert torch.equal(tiny_text.encode(texts, batch_size=8, engine="torch-bf16"), torch.cat(per_batch))


def test_image_tower_runs_under_onnx_and_bf16():
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model({s: "image" for s in SIDES}, adapter_options={"size": 32}, encoder_options={"arch": "resnet10"})
    images = [torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8).numpy().transpose(1, 2, 0) for _ in range(5)]
    ref = model.encode(images)
    assert float((ref - model.encode(images, engine="onnx")).abs().max()) <= 1e-4
    assert _one_minus_cos(ref, model.encode(images, engine="torch-bf16")) <= 1e-2


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_is_bf16_where_the_cpu_has_it(tiny_text, monkeypatch, has_bf16):
    monkeypatch.setattr(engines, "bf16_supported", lambda device=None: has_bf16)
    expected = tiny_text.encode(TEXTS[:8], engine="torch-bf16" if has_bf16 else "torch")
    assert torch.equal(tiny_text.encode(TEXTS[:8], engine="auto"), expected)
    assert engines.resolve_engine("auto", "cpu") == ("torch-bf16" if has_bf16 else "torch")
    assert model_engine(tiny_text, "auto") == ("torch-bf16" if has_bf16 else "torch")
    assert model_engine(lambda items: torch.ones(len(items), 2), "auto") == "torch"  # not an anycl model: as it is


def test_the_onnx_session_follows_the_weights(tiny_text):
    pytest.importorskip("onnxruntime")
    import copy

    model = copy.deepcopy(tiny_text)
    tower = model.tower("text")
    model.encode(TEXTS[:4], engine="onnx")
    first = engines._SESSIONS[tower][(tower.encode_with_head, False)][1]
    model.encode(TEXTS[4:8], engine="onnx")
    assert engines._SESSIONS[tower][(tower.encode_with_head, False)][1] is first  # same weights: no new export
    with torch.no_grad():
        for p in tower.parameters():
            p.add_(0.05 * torch.randn_like(p))  # an optimiser step, in place
    ref = model.encode(TEXTS[:8])
    got = model.encode(TEXTS[:8], engine="onnx")
    assert engines._SESSIONS[tower][(tower.encode_with_head, False)][1] is not first
    assert float((ref - got).abs().max()) <= 1e-5


# -- the options checked ---------------------------------------------------------------------------------
def test_bad_engines_are_config_errors(tiny_text):
    with pytest.raises(ConfigError, match=r"engine must be one of 'auto', 'torch', .* got 'onxx'.*'onnx'"):
        tiny_text.encode(TEXTS[:2], engine="onxx")
    with pytest.raises(ConfigError, match="engine must be one of"):
        tiny_text.encode(TEXTS[:2], engine=None)
    with pytest.raises(ConfigError, match=r"engine must be one of .* got 'bf16'"):
        MiningOptions(engine="bf16")
    with pytest.raises(ConfigError, match=r"precision='bf16' \(the engine 'torch-bf16'\) and engine='onnx' disagree"):
        MiningOptions(precision="bf16", engine="onnx")
    with pytest.raises(ConfigError, match=r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"):
        MiningOptions(precision="fp16")
    assert MiningOptions(precision="bf16").embed_engine == "torch-bf16"
    assert MiningOptions(precision="fp32", engine="torch").embed_engine == "torch"
    with pytest.raises(ConfigError, match="engine='onnx' runs on the CPU .* the model is on cuda"):
        engines.resolve_engine("onnx", "cuda")
    with pytest.raises(ConfigError, match="engine='onnx-int8' runs anycl models only .* this is a function"):
        embed_all(lambda items: torch.ones(len(items), 2), ["a"], engine="onnx-int8")


def test_a_missing_onnxruntime_names_the_pip_extra(tiny_text, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ConfigError, match=r"engine='onnx' needs the package onnxruntime .*pip install 'anycl\[onnx\]'"):
        tiny_text.encode(TEXTS[:2], engine="onnx")
    with pytest.raises(ConfigError, match=r"pip install 'anycl\[onnx\]'"):
        mine_hard_negatives(tiny_text, [(t, t + "!") for t in TEXTS[:6]], verbose=False, engine="onnx-int8")


def test_the_mined_sampler_takes_mining_engine():
    with pytest.raises(ConfigError, match="the mined sampler's option for the mining engine is 'mining_engine'"):
        MinedNegativeSampler(engine="onnx")
    assert MinedNegativeSampler().mining_precision is None  # fit sets it from mixed_precision
    named = MinedNegativeSampler(mining_engine="onnx")
    assert named.mining_options.engine == "onnx" and named.mining_precision == "onnx"  # fit leaves it alone
    assert MinedNegativeSampler(mining_precision="bf16").mining_options.embed_engine == "torch-bf16"


# -- the command line, evaluation and mining -------------------------------------------------------------
def test_cli_embed_engine(tiny_text, tmp_path):
    pytest.importorskip("onnxruntime")
    tiny_text.save(str(tmp_path / "model"))
    items = tmp_path / "items.csv"
    pd.DataFrame({"text": TEXTS[:10]}).to_csv(items, index=False)
    ref = tiny_text.encode(TEXTS[:10]).numpy()
    for engine in ("onnx", "torch-bf16"):
        out = tmp_path / f"{engine}.npy"
        argv = ["embed", str(tmp_path / "model"), str(items), "--column", "text", "-o", str(out), "-q"]
        assert cli.main(argv + ["--engine", engine]) == 0
        got = np.load(out)
        assert float(np.abs(1 - (got * ref).sum(-1)).max()) <= ONE_MINUS_COS[engine]
        assert json.loads(out.with_suffix(".ids.json").read_text()) == list(range(10))
    argv = ["embed", str(tmp_path / "model"), str(items), "-o", str(tmp_path / "x.npy"), "--engine", "fast"]
    with pytest.raises(SystemExit):
        cli.main(argv)


def test_evaluator_engine(tiny_text):
    pytest.importorskip("onnxruntime")
    pairs = [{"anchor": t, "positive": t.upper()} for t in TEXTS[:20]]
    from anycl.data.inputs import to_rows

    ev = RetrievalEvaluator.from_rows(to_rows(pairs))
    assert ev.engine is None
    ref = ev(tiny_text)
    ev.engine = "onnx"
    got = ev(tiny_text)
    assert set(got) == set(ref) and all(abs(got[k] - ref[k]) <= 1e-6 for k in ref)


@pytest.mark.parametrize("engine", ["torch-bf16", "onnx", "onnx-int8"])
def test_mining_with_a_fast_engine_finds_the_fp32_negatives(tiny_text, engine):
    pytest.importorskip("onnxruntime")
    # an easy case: one word per query, its document that word and another; candidates differ clearly
    words = "cat river engine bread star violin glacier chess lamp ocean tiger maple copper desert piano cloud".split()
    pairs = [(w, f"{w} {words[(i * 5 + 3) % 16]}") for i, w in enumerate(words)]
    ref, _ = mine_hard_negatives(tiny_text, pairs, verbose=False, engine="torch", num_negatives=2)
    got, stats = mine_hard_negatives(tiny_text, pairs, verbose=False, engine=engine, num_negatives=2)
    assert stats.engine == engine and f"with {engine}," in str(stats)
    columns = ("anchor", "negative_1", "negative_2")
    assert [[r[c] for c in columns] for r in got] == [[r[c] for c in columns] for r in ref]


def test_fit_mines_with_the_onnx_engine_on_the_current_weights_and_evaluates_as_it_trains(tiny_bert, monkeypatch):
    pytest.importorskip("onnxruntime")
    import anycl

    exports = []
    real = engines.export_graph
    monkeypatch.setattr(engines, "export_graph", lambda *a, **k: exports.append(1) or real(*a, **k))
    words = "cat river engine bread star violin glacier chess lamp ocean tiger maple copper desert piano cloud".split()
    pairs = [{"anchor": w, "positive": f"{w} {words[(i * 5 + 3) % 16]}"} for i, w in enumerate(words)]
    model = anycl.fit(
        pairs,
        modality="text",
        model=tiny_bert,
        adapter_options={"max_seq_length": 32},
        sampler="mined",
        sampler_options={"mining_engine": "onnx", "refresh_every": 1, "verbose": False},
        batch_size=8,
        max_steps=2,
        lr=1e-3,
        eval_dataset=pairs,
        mixed_precision="bf16",
        progress=False,
        log_with=None,
    )
    sampler = model.trainer.sampler
    assert sampler.mining_options.engine == "onnx" and sampler.mining_precision == "onnx"
    assert len(sampler.history) >= 2 and len(exports) == len(sampler.history)  # a fresh export per pass
    assert all(h["engine"] == "onnx" for h in sampler.history)
    assert model.trainer.evaluator.engine == "torch-bf16"  # evaluation computes as training does


def test_the_commands_take_engine():
    from anycl.cli.parser import build_parser

    parse = build_parser().parse_args
    assert parse(["embed", "m", "d.csv", "-o", "e.npy"]).engine == "torch"  # encode's exact default
    assert parse(["eval", "m", "d.csv"]).engine == "torch"
    assert parse(["mine", "m", "d.csv", "-o", "o.csv"]).engine == "auto"  # mining's default
    assert parse(["eval", "m", "d.csv", "--engine", "onnx-int8"]).engine == "onnx-int8"
    assert parse(["mine", "m", "d.csv", "-o", "o.csv", "--engine", "torch-bf16"]).engine == "torch-bf16"

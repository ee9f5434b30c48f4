"""Mixed precision: bf16 autocast trains end to end on the CPU (with and without GradCache, LoRA, audio, images,
distillation; the loss computed in float32, the weights and the saved model fp32); the default ``"auto"`` picks bf16
where the CPU has bf16 units (the probe monkeypatched) and fp32 where it has none, says so once in the log and
records it; an explicit ``"no"`` stays fp32; fp16 on a machine without a GPU and unknown values are clear errors."""

import logging
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy_modality import ToyEncoder, toy_rows

import anycl
from anycl.errors import ConfigError
from anycl.model import precision as hw
from anycl.training import TrainingArgs
from anycl.training import precision as prec
from anycl.training.accelerator import make_accelerator

sys.path.insert(0, str(Path(__file__).parent))
from test_audio import FAST as AUDIO  # noqa: E402
from test_audio import _clips, noise, tone, write  # noqa: E402
from test_image import FAST as IMAGE  # noqa: E402
from test_image import _images  # noqa: E402


@pytest.mark.parametrize("gradcache", [None, 3])
def test_bf16_autocast_trains_on_cpu(gradcache):
    rows = toy_rows(24, negatives=1)
    opts = dict(
        modality="toyvec",
        batch_size=8,
        epochs=1,
        progress=False,
        seed=2,
        cpu=True,
        log_with=None,
        log_every=1,
        gradcache_mini_batch=gradcache,
    )
    dtypes = []
    torch.manual_seed(0)
    encoder = ToyEncoder()
    encoder.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    bf16 = anycl.fit(rows, mixed_precision="bf16", encoder=encoder, **opts)
    assert set(dtypes) == {torch.bfloat16}  # autocast really ran the encoder in bf16
    torch.manual_seed(0)
    fp32 = anycl.fit(rows, mixed_precision="no", encoder=ToyEncoder(), **opts)
    losses = [h["loss"] for h in bf16.trainer.history]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # weights stay float32; bf16 only changes the arithmetic, so the runs stay close to each other
    for k, v in bf16.state_dict().items():
        assert v.dtype == fp32.state_dict()[k].dtype
    assert losses == pytest.approx([h["loss"] for h in fp32.trainer.history], rel=0.05)
    emb = bf16.encode([r["anchor"] for r in rows[:4]])
    assert emb.dtype == torch.float32 and torch.isfinite(emb).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where a GPU is present")
def test_fp16_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"mixed_precision='fp16' needs a CUDA or MPS device; on CPU use 'bf16'"):
        anycl.fit(toy_rows(8), modality="toyvec", mixed_precision="fp16", progress=False)


@pytest.mark.parametrize("bad", ["int8", "BF16", True, 16])
def test_an_unknown_precision_is_a_clear_error_before_training(bad):
    msg = rf"mixed_precision must be 'auto', 'no', 'bf16' or 'fp16', got {bad!r}"
    with pytest.raises(ConfigError, match=msg):
        anycl.fit(toy_rows(8), modality="toyvec", mixed_precision=bad, progress=False)
    with pytest.raises(ConfigError, match=msg):  # the Trainer's own arguments, used without fit
        make_accelerator(TrainingArgs(mixed_precision=bad, cpu=True))


# -- what "auto" resolves to -------------------------------------------------------------------------------------
def _flags_file(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return path


@pytest.mark.parametrize(
    "flags, torch_says, expected",
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", set(), "avx512_bf16"),
        ("fpu avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", set(), "amx_bf16"),
        ("fpu sse2 avx2 avx512f avx512_vnni", set(), None),  # AVX-512 alone has no bf16 arithmetic
        ("fpu sse2 avx2", {"avx512_bf16"}, "avx512_bf16"),  # torch's own probe is enough
        (None, set(), None),  # no /proc/cpuinfo (not Linux) and torch knows of none
    ],
)
def test_the_cpu_probe_reads_the_bf16_flags(tmp_path, monkeypatch, flags, torch_says, expected):
    path = _flags_file(tmp_path, flags) if flags is not None else tmp_path / "missing"
    monkeypatch.setattr(hw, "CPUINFO", path)
    monkeypatch.setattr(hw, "_torch_flags", lambda: set(torch_says))
    assert hw.cpu_bf16_units() == expected
    assert hw.cpu_has_bf16() is (expected is not None)  # the embedding engine's "auto" asks the same probe


def test_auto_is_bf16_on_a_gpu_with_bf16_never_fp16_and_given_values_stay(monkeypatch):
    monkeypatch.setattr(prec.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(prec.torch.cuda, "get_device_name", lambda *a: "Test GPU")
    monkeypatch.setattr(prec, "cuda_bf16", lambda: True)
    assert prec.resolve_precision("auto") == ("bf16", "the GPU (Test GPU) supports bf16")
    assert prec.resolve_precision(None) == ("bf16", "the GPU (Test GPU) supports bf16")
    monkeypatch.setattr(prec, "cuda_bf16", lambda: False)  # e.g. a pre-Ampere GPU: fp32, not fp16
    assert prec.resolve_precision("auto") == ("no", "the GPU does not support bf16")
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: None)
    assert prec.resolve_precision("auto", cpu=True) == ("no", "the CPU has no bf16 units (avx512_bf16 or AMX)")
    for given in ("no", "bf16", "fp16"):
        assert prec.resolve_precision(given) == (given, "given")


# -- fit with the default ----------------------------------------------------------------------------------------
def _fit_recording(tmp_path, caplog, **extra):
    """A toy fit on the CPU with the default precision unless ``extra`` gives one: (model, the encoder's output
    dtypes in training, the log's messages)."""
    dtypes = []
    torch.manual_seed(0)
    encoder = ToyEncoder()
    encoder.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype) if m.training else None)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(
            toy_rows(16),
            modality="toyvec",
            encoder=encoder,
            batch_size=8,
            cpu=True,
            progress=False,
            log_with=None,
            output_dir=str(tmp_path / "run"),
            **extra,
        )
    return model, set(dtypes), [r.getMessage() for r in caplog.records]


def _saved_dtypes(tmp_path):
    files = sorted((tmp_path / "run" / "model").rglob("*.safetensors"))
    assert files
    return {v.dtype for f in files for v in load_file(str(f)).values()}


def test_auto_trains_in_bf16_where_the_cpu_has_bf16_units_says_so_once_and_records_it(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: "avx512_bf16")
    model, dtypes, messages = _fit_recording(tmp_path, caplog)
    assert dtypes == {torch.bfloat16}  # autocast ran the encoder in bf16
    said = [m for m in messages if m.startswith("mixed precision:")]
    assert said == [
        "mixed precision: bf16 autocast, master weights fp32 (mixed_precision='auto': the CPU has bf16 units "
        "(avx512_bf16)); mixed_precision='no' trains in fp32"
    ]
    [line] = [m for m in messages if m.startswith("training: ")]
    assert "precision bf16 autocast with fp32 weights (auto: the CPU has bf16 units (avx512_bf16))" in line
    assert model.info["config"]["mixed_precision"] == "bf16"  # the record repeats the precision the run used
    assert "mixed_precision: bf16" in (tmp_path / "run" / "config.yaml").read_text()
    assert {v.dtype for v in model.state_dict().values()} == {torch.float32}  # master weights stay fp32
    assert _saved_dtypes(tmp_path) == {torch.float32}  # and so does the saved model
    assert model.encode([r["anchor"] for r in toy_rows(2)]).dtype == torch.float32


def test_auto_keeps_fp32_where_the_cpu_has_no_bf16_units(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: None)
    model, dtypes, messages = _fit_recording(tmp_path, caplog)
    assert dtypes == {torch.float32}
    assert [m for m in messages if m.startswith("mixed precision:")] == [
        "mixed precision: none, fp32 (mixed_precision='auto': the CPU has no bf16 units (avx512_bf16 or AMX))"
    ]
    assert model.info["config"]["mixed_precision"] == "no"
    assert _saved_dtypes(tmp_path) == {torch.float32}


def test_no_given_stays_fp32_on_a_cpu_with_bf16_units(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: "amx_bf16")
    model, dtypes, messages = _fit_recording(tmp_path, caplog, mixed_precision="no")
    assert dtypes == {torch.float32}
    assert not [m for m in messages if m.startswith("mixed precision:")]  # the user chose: nothing to explain
    [line] = [m for m in messages if m.startswith("training: ")]
    assert ", precision fp32, " in line
    assert model.info["config"]["mixed_precision"] == "no"


def test_the_trainer_alone_resolves_auto_too(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: "avx512_bf16")
    args = TrainingArgs(cpu=True)
    assert args.mixed_precision == "auto"
    acc = make_accelerator(args)
    assert acc.mixed_precision == "bf16" and args.mixed_precision == "bf16"
    assert args.mixed_precision_why == "the CPU has bf16 units (avx512_bf16)"
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: None)
    assert make_accelerator(TrainingArgs(cpu=True)).mixed_precision == "no"


# -- the other training paths under bf16 autocast on the CPU -----------------------------------------------------
@pytest.fixture
def autocast_seen():
    """``{id(module): {whether CPU autocast was on}}`` for each forward of a module in training mode (a global
    forward hook); the test keeps the model's modules (the data's transforms run outside the step, the loss
    computes in fp32 on purpose)."""
    seen: dict = {}

    def hook(m, i, o):
        if m.training:
            seen.setdefault(id(m), set()).add(torch.is_autocast_enabled("cpu"))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield seen
    handle.remove()


def _lora(tmp_path, minilm_path, text_pairs):
    return anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        peft={"r": 4, "alpha": 8, "target_modules": ["query", "value"]},
        batch_size=8,
        max_steps=2,
        lr=1e-3,
        adapter_options={"max_seq_length": 16},
        mixed_precision="bf16",
    )


def _audio(tmp_path, minilm_path, text_pairs):
    _clips(tmp_path, n_per_class=4)
    return anycl.fit(str(tmp_path), modality="audio", mixed_precision="bf16", **{**AUDIO, "batch_size": 4})


def _image(tmp_path, minilm_path, text_pairs):
    return anycl.fit(_images(16, size=16), modality="image", mixed_precision="bf16", **IMAGE)


def _image_default_augment(tmp_path, minilm_path, text_pairs):
    """The default preset's augmentations (blur included): the batched augmentation runs in fp32, not autocast's."""
    options = {**IMAGE, "adapter_options": {"size": 16}}
    return anycl.fit(_images(16, size=16), modality="image", mixed_precision="bf16", **options)


def _distill(tmp_path, minilm_path, text_pairs):
    from anycl.model.contrastive import build_model

    torch.manual_seed(0)
    teacher = build_model(
        {"anchor": "image", "positive": "image"},
        adapter_options={"preset": "small", "size": 16},
        encoder_options={"arch": "resnet10", "width": 4},
        head=None,
    )
    return anycl.fit(_images(16, size=16), modality="image", teacher=teacher, mixed_precision="bf16", **IMAGE)


@pytest.mark.parametrize(
    "run",
    [_lora, _audio, _image, _image_default_augment, _distill],
    ids=["lora", "audio", "image", "image-default-augment", "distillation"],
)
def test_lora_audio_image_and_distillation_train_under_bf16_autocast(
    run, tmp_path, minilm_path, text_pairs, autocast_seen
):
    model = run(tmp_path, minilm_path, text_pairs)
    ran = [autocast_seen[id(m)] for m in model.modules() if id(m) in autocast_seen]
    assert ran and set().union(*ran) == {True}  # every forward of the model in training ran under autocast
    losses = [h["loss"] for h in model.trainer.history]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert {v.dtype for v in model.state_dict().values() if v.is_floating_point()} == {torch.float32}


def test_an_audio_run_evaluated_under_bf16_embeds_its_clips_as_the_reloaded_model_does(tmp_path):
    # clips at 44.1 kHz, so every read resamples; the evaluations during training run under autocast and keep the
    # clips they decode in the adapter's cache: the model fit returns must embed them as a fresh load does
    items, labels = [], []
    for i in range(6):
        for kind, wave in (("tone", tone(150 + 40 * i, 0.5, sr=44100)), ("noise", noise(0.5, seed=i, sr=44100))):
            items.append(write(tmp_path / f"{kind}_{i}.wav", wave, sr=44100))
            labels.append(kind)
    probe = anycl.evaluation.ProbeEvaluator(items[:6], labels[:6], items[6:], labels[6:], k=3)
    out = tmp_path / "run"
    model = anycl.fit(items, modality="audio", mixed_precision="bf16", eval_dataset=probe, output_dir=str(out), **AUDIO)
    assert model.trainer.eval_history  # the clips were decoded under autocast first
    again = anycl.load(str(out))
    torch.testing.assert_close(model.encode(items), again.encode(items), rtol=0, atol=1e-6)

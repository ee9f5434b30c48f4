"""Pretrained audio encoders from transformers (adapters/audio_pretrained.py, adapters/audio_families.py).

Every checkpoint is a tiny random-init model built here from its config class and written with
``save_pretrained`` (no download): the embeddings anycl gives are checked against the transformers model run
directly on its feature extractor's output, then each family trains, saves, reloads bit for bit and exports to
ONNX with the same embeddings.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import torch
import transformers

import anycl
from anycl.errors import ConfigError
from anycl.export.to_onnx import features_for, onnx_session, run_onnx
from anycl.fitting.data import SIDES
from anycl.model.contrastive import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = ["wav2vec2", "hubert", "wavlm", "ast", "whisper", "clap"]
# the tiny checkpoints' sample rates: anycl resamples the 16 kHz test clips to 8 and 48 kHz
RATES = {"wav2vec2": 8000, "hubert": 16000, "wavlm": 16000, "ast": 16000, "whisper": 16000, "clap": 48000}
_WAVE = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    conv_dim=(8, 8),
    conv_stride=(5, 4),
    conv_kernel=(10, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def make_checkpoint(family: str, folder) -> str:
    """A tiny random-init model of ``family`` and its feature extractor, saved as a Hub checkpoint is."""
    t = transformers
    torch.manual_seed(0)
    if family in ("wav2vec2", "hubert", "wavlm"):
        cls = {"wav2vec2": (t.Wav2Vec2Config, t.Wav2Vec2Model), "hubert": (t.HubertConfig, t.HubertModel)}.get(
            family, (t.WavLMConfig, t.WavLMModel)
        )
        extra = {"num_buckets": 8, "max_bucket_distance": 20} if family == "wavlm" else {}
        model = cls[1](cls[0](**_WAVE, **extra))
        # wav2vec2-base style (no attention mask to the model) and large style (a mask)
        fe = t.Wav2Vec2FeatureExtractor(sampling_rate=RATES[family], return_attention_mask=family != "wav2vec2")
    elif family == "ast":
        cfg = t.ASTConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_length=100,
            num_mel_bins=32,
            patch_size=16,
            frequency_stride=10,
            time_stride=10,
        )
        model, fe = t.ASTModel(cfg), t.ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    elif family == "whisper":
        cfg = t.WhisperConfig(
            d_model=16,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=32,
            num_mel_bins=16,
            max_source_positions=50,
            max_target_positions=16,
            vocab_size=100,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        )
        model, fe = t.WhisperModel(cfg), t.WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    else:  # a whole CLAP model (text tower too), as laion/clap-htsat-unfused is
        audio = dict(
            hidden_size=16,
            patch_embeds_hidden_size=8,
            num_mel_bins=16,
            spec_size=64,
            patch_size=4,
            patch_stride=(4, 4),
            window_size=4,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            projection_dim=16,
            num_hidden_layers=2,
        )
        text = dict(
            vocab_size=100,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            projection_dim=16,
            max_position_embeddings=64,
        )
        model = t.ClapModel(t.ClapConfig(audio_config=audio, text_config=text, projection_dim=16))
        fe = t.ClapFeatureExtractor(
            feature_size=16,
            sampling_rate=48000,
            max_length_s=1,
            hop_length=480,
            fft_window_size=1024,
            truncation="rand_trunc",
        )
    model.save_pretrained(str(folder))
    fe.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``checkpoint(family)``: the folder of that family's tiny checkpoint (made once per module)."""
    made = {}

    def get(family: str) -> str:
        if family not in made:
            made[family] = make_checkpoint(family, tmp_path_factory.mktemp(family))
        return made[family]

    return get


def clips(seconds, rate=16000, seed=0):
    g = np.random.default_rng(seed)
    t = np.arange(int(max(seconds) * rate)) / rate
    out = []
    for i, s in enumerate(seconds):
        n = int(s * rate)
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t[:n]) + 0.05 * g.standard_normal(n)
        out.append((wave.astype(np.float32), rate))
    return out


def audio_model(folder, **adapter_options):
    return build_model({s: "audio" for s in SIDES}, model=folder, adapter_options=adapter_options or None).eval()


def fit_one_step(folder, items=None, **options):
    """One optimiser step on four short clips from the checkpoint in ``folder``, with 0.5 s windows."""
    items = items or clips([0.6, 0.9, 1.2, 0.4])
    fast = dict(max_steps=1, batch_size=4, progress=False, seed=0, adapter_options={"clip_seconds": 0.5})
    return anycl.fit(items, modality="audio", model=folder, **{**fast, **options})


# ---- the pretrained weights are used, each family fed and pooled as transformers runs it -------------
def reference(family: str, folder: str, waves):
    """Embeddings by transformers alone: the model from the folder on its feature extractor's output, pooled
    (the mean over all frames or patch tokens of clips that fill the model's window; CLAP's audio_embeds)."""
    t = transformers
    rate = RATES[family]
    with torch.no_grad():
        if family in ("wav2vec2", "hubert", "wavlm"):
            fe = t.Wav2Vec2FeatureExtractor.from_pretrained(folder)
            model = {"wav2vec2": t.Wav2Vec2Model, "hubert": t.HubertModel, "wavlm": t.WavLMModel}[family]
            m = model.from_pretrained(folder).eval()
            return torch.cat(
                [m(**fe(w, sampling_rate=rate, return_tensors="pt")).last_hidden_state.mean(1) for w in waves]
            )
        if family == "ast":
            m = t.ASTModel.from_pretrained(folder).eval()
            x = t.ASTFeatureExtractor.from_pretrained(folder)(waves, sampling_rate=rate, return_tensors="pt")
            return m(**x).last_hidden_state[:, 2:].mean(1)
        if family == "whisper":
            m = t.WhisperModel.from_pretrained(folder).encoder.eval()
            x = t.WhisperFeatureExtractor.from_pretrained(folder)(waves, sampling_rate=rate, return_tensors="pt")
            return m(x["input_features"]).last_hidden_state.mean(1)
        m = t.ClapModel.from_pretrained(folder).eval()
        x = t.ClapFeatureExtractor.from_pretrained(folder)(waves, sampling_rate=rate, return_tensors="pt")
        return m.audio_projection(m.audio_model(input_features=x["input_features"]).pooler_output)


@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_are_the_transformers_model_on_its_feature_extractor(checkpoint, family):
    folder = checkpoint(family)
    rate = RATES[family]
    # clips at the model's own rate, each exactly one 1 s window (AST's 100 frames, Whisper's 1 s chunk)
    items = [(w, r) for w, r in clips([1.0, 1.0], rate=rate)]
    model = audio_model(folder, clip_seconds=1.0)
    adapter = model.tower("audio").adapter
    assert adapter.sample_rate == rate and adapter.options["sample_rate"] == rate
    got = model.encode(items, normalize=False)
    want = reference(family, folder, [w for w, _ in items])
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    random_init = type(model.tower("audio").encoder.model)(model.tower("audio").encoder.model.config)
    model.tower("audio").encoder.model = random_init.eval()  # the same model with no checkpoint: other numbers
    assert not torch.allclose(model.encode(items, normalize=False), want, atol=1e-3)


def test_clips_are_resampled_to_the_models_rate(checkpoint):
    folder = checkpoint("wav2vec2")  # an 8 kHz model
    import torchaudio

    ((wave, _),) = clips([1.0], rate=16000)
    model = audio_model(folder, clip_seconds=1.0)
    got = model.encode([(wave, 16000)], normalize=False)
    resampled = torchaudio.functional.resample(torch.from_numpy(wave), 16000, 8000).numpy()
    assert torch.allclose(got, reference("wav2vec2", folder, [resampled]), atol=1e-5)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "whisper", "ast"])
def test_a_short_clip_is_padded_and_the_padding_left_out_of_the_mean(checkpoint, family):
    folder = checkpoint(family)
    rate = RATES[family]
    ((short, _),) = clips([0.55], rate=rate)
    model = audio_model(folder, clip_seconds=1.0)
    enc = model.tower("audio").encoder
    got = model.encode([(short, rate)], normalize=False)
    n = len(short)
    padded = np.pad(short, (0, rate - n))
    t = transformers
    with torch.no_grad():
        if family in ("wav2vec2", "hubert"):
            fe = t.Wav2Vec2FeatureExtractor.from_pretrained(folder)
            x = fe(padded, sampling_rate=rate, return_tensors="pt")
            x["input_values"][0, :n] = torch.from_numpy(fe(short, sampling_rate=rate)["input_values"][0])
            x["input_values"][0, n:] = 0.0  # normalised over the clip's own samples, then zero-padded
            mask = torch.zeros(1, rate, dtype=torch.long)
            mask[0, :n] = 1
            hidden = enc.model(x["input_values"], attention_mask=mask if family == "hubert" else None)
            frames = int(enc.model._get_feat_extract_output_lengths(torch.tensor(n)))
            want = hidden.last_hidden_state[:, :frames].mean(1)
            every = hidden.last_hidden_state.mean(1)
        elif family == "whisper":
            x = t.WhisperFeatureExtractor.from_pretrained(folder)(short, sampling_rate=rate, return_tensors="pt")
            hidden = enc.model(x["input_features"]).last_hidden_state
            frames = (n // 160 + 1) // 2  # 10 ms mel frames, two per encoder frame
            want, every = hidden[:, :frames].mean(1), hidden.mean(1)
        else:  # AST: the patches (10-frame time stride) that start on one of the clip's Kaldi frames
            x = t.ASTFeatureExtractor.from_pretrained(folder)(short, sampling_rate=rate, return_tensors="pt")
            tokens = enc.model(**x).last_hidden_state[:, 2:].view(1, 2, 9, -1)  # frequency × time patches
            frames = 1 + (n - 400) // 160
            kept = [j for j in range(9) if 10 * j < frames]
            want, every = tokens[:, :, kept].mean((1, 2)), tokens.mean((1, 2))
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert not torch.allclose(got, every, atol=1e-4)


def test_sliding_windows_average_the_window_embeddings(checkpoint):
    folder = checkpoint("hubert")
    ((wave, _),) = clips([2.0])
    model = audio_model(folder, clip_seconds=0.5, eval_crop="windows", eval_windows=3)
    got = model.encode([(wave, 16000)], normalize=False)
    starts = np.linspace(0, len(wave) - 8000, 3).round().astype(int)
    one = audio_model(folder, clip_seconds=0.5)
    each = one.encode([(wave[s : s + 8000], 16000) for s in starts], normalize=False)
    assert torch.allclose(got[0], each.mean(0), atol=1e-5)


# ---- train → save → load bit for bit → ONNX, one model of each family -----------------------------------
def _refused(what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"anycl.load used {what}")

    return refuse


@pytest.mark.parametrize("family", FAMILIES)
def test_train_save_load_and_onnx(checkpoint, tmp_path, family, monkeypatch):
    folder = checkpoint(family)
    items = clips([0.6, 0.9, 1.2, 0.4])
    start = audio_model(folder, clip_seconds=0.5).encode(items)
    model = fit_one_step(folder, items)
    assert model.trainer.args.lr == 5e-5  # a pretrained model's fine-tuning default
    emb = model.encode(items)
    assert not torch.allclose(emb, start, atol=1e-6)  # it trained
    model.save(str(tmp_path / "m"))
    tower_dir = tmp_path / "m" / "towers" / "audio"
    files = sorted(os.listdir(tower_dir))
    assert {"config.json", "preprocessor_config.json", "model.safetensors"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    spec = json.loads((tmp_path / "m" / "anycl_config.json").read_text())["towers"]["audio"]["encoder"]
    assert spec["kind"] == "transformers" and spec["base_model"] == folder
    with monkeypatch.context() as m:  # loading needs no network and unpickles nothing
        m.setattr(socket.socket, "connect", _refused("a network connection"))
        m.setattr(torch, "load", _refused("torch.load (pickle)"))
        again = anycl.load(str(tmp_path / "m"))
    assert torch.equal(again.encode(items), emb)  # bit for bit
    again.export_onnx(str(tmp_path / "onnx"))
    extractor = transformers.AutoFeatureExtractor.from_pretrained(str(tmp_path / "onnx"))  # saved beside
    assert extractor.to_dict() == again.tower("audio").encoder.extractor.to_dict()
    got = run_onnx(onnx_session(str(tmp_path / "onnx")), features_for(again, items))
    assert np.allclose(got, emb.numpy(), atol=1e-5), np.abs(got - emb.numpy()).max()


def test_freeze_the_feature_encoder_or_layers(checkpoint, tmp_path):
    folder = checkpoint("hubert")
    base = safetensors.torch.load_file(os.path.join(folder, "model.safetensors"))
    for freeze, fixed, trained in (
        (
            "feature_encoder",
            ["feature_extractor.", "feature_projection.", "encoder.pos_conv_embed."],
            ["encoder.layers.0."],
        ),
        (1, ["feature_extractor.", "encoder.layers.0."], ["encoder.layers.1."]),
    ):
        model = fit_one_step(folder, encoder_options={"freeze": freeze}, lr=1e-2)
        enc = model.tower("audio").encoder
        state = enc.model.state_dict()
        compared = {k: v for k, v in state.items() if k in base}
        assert [k for k in compared if k.startswith(tuple(fixed))]
        for k, v in compared.items():
            if k.startswith(tuple(fixed)):
                assert torch.equal(v, base[k]), k
        assert any(not torch.equal(v, base[k]) for k, v in compared.items() if k.startswith(tuple(trained)))
        enc.train()
        assert not enc.model.feature_extractor.training and enc.model.encoder.layers[-1].training
        model.save(str(tmp_path / str(freeze)))
        assert anycl.load(str(tmp_path / str(freeze))).tower("audio").encoder.anycl_spec["freeze"] == freeze


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_freezes_its_stem_and_layers_and_takes_lora(checkpoint, family):
    from anycl.model.lora import apply_lora

    model = build_model({s: "audio" for s in SIDES}, model=checkpoint(family), encoder_options={"freeze": 1})
    enc = model.tower("audio").encoder
    frozen = {n for n, p in enc.model.named_parameters() if not p.requires_grad}
    trained = {n for n, p in enc.model.named_parameters() if p.requires_grad}
    first, last = (f"{path}.{i}." for path in [family_layers(enc)] for i in (0, 1))
    assert any(n.startswith(first) for n in frozen) and not any(n.startswith(first) for n in trained)
    assert any(n.startswith(last) for n in trained) and not any(n.startswith(last) for n in frozen)
    assert any(n.startswith(enc.family.stem) for n in frozen)
    counts = apply_lora(model, {"r": 2})
    assert counts["audio"] > 0
    adapted = {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for n, _ in enc.model.named_parameters() if "lora_" in n}
    assert adapted and adapted <= {"q_proj", "v_proj", "query", "value"}


def family_layers(enc):
    return next(p for p in enc.family.layers if any(n.startswith(p + ".0.") for n, _ in enc.model.named_parameters()))


@pytest.mark.parametrize("bad", ["everything", 3, -1, True])
def test_a_bad_freeze_is_a_config_error(checkpoint, bad):
    with pytest.raises(ConfigError, match="freeze"):
        build_model({s: "audio" for s in SIDES}, model=checkpoint("wav2vec2"), encoder_options={"freeze": bad})


def test_lora_adapters_train_save_and_reload(checkpoint, tmp_path):
    folder = checkpoint("wav2vec2")
    base = safetensors.torch.load_file(os.path.join(folder, "model.safetensors"))
    model = fit_one_step(folder, peft={"r": 2, "merge": False})
    inner = model.tower("audio").encoder.model
    lora = [n for n, _ in inner.named_parameters() if "lora_" in n]
    assert lora and all(".q_proj." in n or ".v_proj." in n for n in lora)  # the family's default targets
    frozen = [n for n, p in inner.named_parameters() if "lora_" not in n and p.requires_grad]
    assert frozen == []
    items = clips([0.7, 1.1])
    emb = model.encode(items)
    model.save(str(tmp_path / "m"))
    saved = safetensors.torch.load_file(str(tmp_path / "m" / "towers" / "audio" / "model.safetensors"))
    assert set(saved) == set(base) and all(torch.equal(saved[k], base[k]) for k in base)  # base weights as they were
    assert (tmp_path / "m" / "towers" / "audio" / "lora" / "adapter_model.safetensors").is_file()  # a PEFT folder
    again = anycl.load(str(tmp_path / "m"))
    assert torch.equal(again.encode(items), emb)
    merged = fit_one_step(checkpoint("ast"), peft={"r": 2})  # merged into the weights after training (default)
    assert not [n for n, _ in merged.tower("audio").encoder.model.named_parameters() if "lora_" in n]
    merged.save(str(tmp_path / "merged"))
    assert not (tmp_path / "merged" / "towers" / "audio" / "lora").exists()
    assert torch.equal(anycl.load(str(tmp_path / "merged")).encode(items), merged.encode(items))


# ---- model= is used or refused ------------------------------------------------------------------------
def test_a_name_missing_from_the_cache_offline_names_the_missing_files():
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # conftest: the tests never reach the network
    with pytest.raises(ConfigError) as err:
        build_model({s: "audio" for s in SIDES}, model="anycl-tests/no-such-audio-model")
    msg = str(err.value)
    assert "anycl-tests/no-such-audio-model" in msg and "HF_HUB_OFFLINE=1" in msg
    for f in ("config.json", "preprocessor_config.json", "model.safetensors"):
        assert f in msg


def test_a_folder_without_the_feature_extractor_or_weights_names_them(checkpoint, tmp_path):
    (tmp_path / "config.json").write_text(open(os.path.join(checkpoint("hubert"), "config.json")).read())
    with pytest.raises(ConfigError, match=r"lacks preprocessor_config\.json, model\.safetensors"):
        build_model({s: "audio" for s in SIDES}, model=str(tmp_path))


def test_a_checkpoint_lacking_encoder_weights_is_refused(checkpoint, tmp_path):
    import shutil

    folder = shutil.copytree(checkpoint("hubert"), tmp_path / "cut")
    state = safetensors.torch.load_file(str(folder / "model.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("encoder.layers.1.")}
    safetensors.torch.save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"has no weights for \d+ parameter\(s\) of a hubert encoder"):
        build_model({s: "audio" for s in SIDES}, model=str(folder))


def test_an_unsupported_architecture_lists_the_supported_ones(tmp_path):
    transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    transformers.Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="'bert' model; anycl trains these transformers audio models: wav2vec2"):
        build_model({s: "audio" for s in SIDES}, model=str(tmp_path))


def test_options_a_pretrained_encoder_would_ignore_are_refused(checkpoint):
    folder = checkpoint("ast")
    cases = [
        ({"adapter_options": {"sample_rate": 22050}}, "takes 16000 Hz audio"),
        ({"adapter_options": {"n_mels": 80}}, r"\['n_mels'\] shape anycl's own log-mels"),
        ({"adapter_options": {"augment": "strong"}}, "act on anycl's own log-mels"),
        ({"adapter_options": {"augment": "content"}}, r"\['freq_mask'\] act on anycl's own log-mels"),
        ({"adapter_options": {"augment": {"time_mask": 20}}}, r"\['time_mask'\] act on anycl's own log-mels"),
        ({"adapter_options": {"clip_seconds": 2.0}}, "longer than the 1.015 s this ast model takes whole"),
        ({"encoder_options": {"channels": [8]}}, r"unknown encoder_options \['channels'\] for a pretrained"),
        ({"encoder": torch.nn.Linear(2, 2)}, "both model= and encoder="),
    ]
    with pytest.raises(ConfigError, match="model= for audio takes a Hub name or a folder"):
        build_model({s: "audio" for s in SIDES}, model=torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="is a file; give the folder"):
        build_model({s: "audio" for s in SIDES}, model=os.path.join(folder, "config.json"))
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_model({s: "audio" for s in SIDES}, model=folder, **options)
    assert audio_model(folder, sample_rate=16000).tower("audio").adapter.sample_rate == 16000  # the same: fine
    # the default preset's log-mel masks are not the user's choice: dropped (no log-mels), the waveform ones kept
    adapter = audio_model(folder).tower("audio").adapter
    assert adapter.aug["freq_mask"] == adapter.aug["time_mask"] == 0 and adapter.aug["gain_db"] == 6.0
    assert adapter.recipe()["augment"] == "random window, gain ±6 dB, shift 0.1"


def test_a_transformers_freeze_without_a_pretrained_model_is_refused():
    # anycl's own CNN freezes conv blocks by number (tests/test_audio_freeze.py): a stem name is refused
    with pytest.raises(ConfigError, match=r"freeze must be a number of conv blocks from 0 to 4 .*'feature_encoder'"):
        build_model({s: "audio" for s in SIDES}, encoder_options={"freeze": "feature_encoder"})


def test_model_for_a_tower_that_takes_none_is_refused():
    import toy_modality  # noqa: F401  (registers "toyvec")

    with pytest.raises(ConfigError, match="the toyvec adapter takes no pretrained model"):
        build_model({s: "toyvec" for s in SIDES}, model="some/model")


def test_cli_fit_with_model_trains_the_pretrained_encoder(checkpoint, tmp_path):
    from anycl import cli

    folder = checkpoint("wav2vec2")
    data = tmp_path / "clips"
    data.mkdir()
    for i, (wave, rate) in enumerate(clips([0.6, 0.9, 1.2, 0.4])):
        sf.write(str(data / f"c{i}.wav"), wave, rate)
    out = tmp_path / "out"
    argv = ["fit", str(data), "--modality", "audio", "--model", folder, "--max-steps", "1", "--batch-size", "4"]
    argv += ["--adapter-options", '{"clip_seconds": 0.5}', "--encoder-options", '{"freeze": "feature_encoder"}']
    assert cli.main(argv + ["--output-dir", str(out), "-q"]) == 0
    config = json.loads((out / "model" / "anycl_config.json").read_text())
    spec = config["towers"]["audio"]["encoder"]
    assert spec["kind"] == "transformers" and spec["family"] == "wav2vec2" and spec["freeze"] == "feature_encoder"
    assert config["towers"]["audio"]["adapter"]["sample_rate"] == 8000
    assert f"model: {folder}" in (out / "config.yaml").read_text()

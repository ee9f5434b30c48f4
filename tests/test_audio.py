"""The audio adapter: loading, resampling, padding/cropping, features, augmentations, bad input, fit.

Every clip is synthesised here (sine tones, noise) and written with soundfile into tmp_path.
"""

import logging
import math
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

import anycl
from anycl.adapters import audio_augment as aug
from anycl.adapters import audio_io
from anycl.adapters.audio import AudioAdapter
from anycl.errors import ConfigError, DataError
from anycl.model.tower import Tower

SR = 16000


def tone(freq, seconds=0.5, sr=SR, amp=0.5, phase=0.0):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def noise(seconds=0.5, sr=SR, seed=0, amp=0.3):
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def write(path, wave, sr=SR, fmt=None):
    sf.write(str(path), wave, sr, format=fmt)
    return str(path)


def quiet(**kw):
    """An adapter with augmentations off (deterministic loading tests)."""
    return AudioAdapter(augment=False, **kw)


# -- loading -----------------------------------------------------------------------------------------------
def test_loads_wav_flac_ogg_bytes_arrays_and_hf_dicts_alike(tmp_path):
    x = tone(440)
    a = quiet()
    wav = write(tmp_path / "a.wav", x, fmt="WAV")
    flac = write(tmp_path / "a.flac", x)
    ref = torch.from_numpy(x)
    assert torch.allclose(a.load(wav), ref, atol=1e-4)  # 16-bit PCM rounding
    assert torch.allclose(a.load(flac), ref, atol=1e-4)
    with open(flac, "rb") as fh:
        payload = fh.read()
    assert torch.allclose(a.load(payload), ref, atol=1e-4)
    assert torch.equal(a.load((x, SR)), ref)
    assert torch.equal(a.load((torch.from_numpy(x), SR)), ref)
    assert torch.equal(a.load({"array": x, "sampling_rate": SR}), ref)
    assert torch.allclose(a.load({"path": flac, "bytes": None}), ref, atol=1e-4)
    assert torch.allclose(a.load({"path": "ignored.flac", "bytes": payload}), ref, atol=1e-4)
    ogg = write(tmp_path / "a.ogg", x, fmt="OGG")  # lossy: compare the loudness only
    assert abs(float(a.load(ogg).pow(2).mean()) - float(ref.pow(2).mean())) < 0.02
    assert torch.equal(AudioAdapter(augment=False, input_sample_rate=SR).load(x), ref)


def test_integer_pcm_is_scaled_to_unit_range():
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    out = quiet().load((pcm, SR))
    assert torch.allclose(out, torch.tensor([0.0, 0.5, -1.0, 32767 / 32768]))


def test_resampling_matches_torchaudio_and_the_kernel_is_cached(tmp_path):
    x = tone(1000, sr=44100)
    path = write(tmp_path / "hi.flac", x, sr=44100, fmt="FLAC")
    out = quiet(cache_clips=0).load(path)
    ref = torchaudio.functional.resample(torch.from_numpy(sf.read(path, dtype="float32")[0]), 44100, SR)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    assert audio_io.resampler(44100, SR) is audio_io.resampler(44100, SR)
    assert audio_io.resampler.cache_info().hits >= 1


def test_a_clip_decoded_under_bf16_autocast_is_the_float32_clip(tmp_path):
    # fit's evaluations during a mixed-precision run encode under autocast; the decoded clip they keep in the cache
    # must be the one a reloaded model decodes, or the returned model embeds those clips otherwise (issue 29 trial)
    path = write(tmp_path / "hi.flac", tone(1000, sr=44100), sr=44100, fmt="FLAC")
    ref = quiet(cache_clips=0).load(path)
    adapter = quiet()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = adapter.load(path)
    assert under.dtype == torch.float32 and torch.equal(under, ref)
    assert torch.equal(adapter.load(path), ref)  # the kept copy too


def test_multichannel_is_mixed_down_by_averaging_or_one_channel_kept(tmp_path, caplog):
    left, right = tone(300), tone(700)
    stereo = np.stack([left, right], axis=1)  # (samples, channels), as soundfile writes
    path = write(tmp_path / "st.wav", stereo, fmt="WAV")
    a = quiet()
    with caplog.at_level(logging.INFO, logger="anycl"):
        mono = a.load(path)
    assert torch.allclose(mono, torch.from_numpy((left + right) / 2), atol=1e-4)
    assert "mixed down to mono by averaging" in caplog.text and "st.wav" in caplog.text
    # (channels, samples) tensors and arrays are read the same way
    assert torch.allclose(a.load((torch.from_numpy(stereo.T.copy()), SR)), torch.from_numpy((left + right) / 2))
    assert torch.allclose(quiet(channel=1).load(path), torch.from_numpy(right), atol=1e-4)
    with pytest.raises(DataError, match="st.wav' has 2 channels; channel=5"):
        quiet(channel=5).load(path)


# -- bad input: a clear error naming the clip ----------------------------------------------------------------
def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wave file at all")
    with pytest.raises(DataError, match=r"cannot decode audio file '.*broken\.wav'"):
        quiet().load(str(bad))
    with pytest.raises(DataError, match=r"'.*nowhere\.flac' does not exist"):
        quiet().load(str(tmp_path / "nowhere.flac"))
    with pytest.raises(DataError, match=r"cannot decode audio bytes \(5 B\)"):
        quiet().load(b"hello")


def test_zero_length_clip_is_an_error(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, np.float32), fmt="WAV")
    with pytest.raises(DataError, match=r"empty\.wav' is a zero-length clip"):
        quiet().load(path)
    with pytest.raises(DataError, match="zero-length clip"):
        quiet().load((np.zeros(0, np.float32), SR))


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_samples_are_an_error(bad, kind):
    x = tone(440)
    x[100] = bad
    with pytest.raises(DataError, match=rf"1 non-finite sample\(s\) \({kind} first, at sample 100\)"):
        quiet().load((x, SR))


def test_raw_array_without_a_sample_rate_is_an_error():
    a = quiet()
    with pytest.raises(DataError, match="row 3, column 'anchor'.*sample rate of a raw array is unknown"):
        a.validate(tone(440), "row 3, column 'anchor'")
    with pytest.raises(DataError, match="no 'sampling_rate'"):
        a.load({"array": tone(440)})
    with pytest.raises(DataError, match="positive whole number"):
        a.load((tone(440), -5))
    with pytest.raises(DataError, match=r"must be \(array, sample_rate\)"):
        a.validate((tone(440), "fast", 3), "item 0")
    with pytest.raises(DataError, match="cannot use a set as an audio item"):
        a.validate({1, 2}, "item 0")


def test_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(DataError, match=r"holds no files of this modality \(looked for .wav, .flac"):
        anycl.fit(str(tmp_path), modality="audio")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="pad must be"):
        AudioAdapter(pad="mirror")
    with pytest.raises(ConfigError, match="unknown audio augmentation setting"):
        AudioAdapter(augment={"reverb": 1})
    with pytest.raises(ConfigError, match="unknown noise colour"):
        AudioAdapter(augment={"noise_colors": ["green"]})
    with pytest.raises(ConfigError, match="unknown audio adapter option"):
        AudioAdapter(hop=3)


# -- windows ---------------------------------------------------------------------------------------------------
def test_short_clips_are_padded_with_silence_or_repeated():
    x = torch.arange(1, 6, dtype=torch.float32)
    a = AudioAdapter(sample_rate=10, clip_seconds=1.2, augment=False, eval_crop="center")  # 12 samples
    assert a.eval_view(x).tolist() == [1, 2, 3, 4, 5] + [0] * 7
    r = AudioAdapter(sample_rate=10, clip_seconds=1.2, augment=False, pad="repeat", eval_crop="center")
    assert r.eval_view(x).tolist() == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]
    # the default (three windows): a clip no longer than the window gives three equal, padded windows
    assert (
        AudioAdapter(sample_rate=10, clip_seconds=1.2, augment=False).eval_view(x).tolist()
        == [[1, 2, 3, 4, 5] + [0] * 7] * 3
    )


def test_eval_view_is_the_centre_or_evenly_spaced_windows():
    x = torch.arange(20, dtype=torch.float32)
    a = AudioAdapter(sample_rate=10, clip_seconds=0.4, augment=False, eval_crop="center")
    assert a.eval_view(x).tolist() == [8, 9, 10, 11]
    assert AudioAdapter().options["eval_crop"] == "windows"  # the default since issue 29
    w = AudioAdapter(sample_rate=10, clip_seconds=0.4, augment=False, eval_crop="windows", eval_windows=3)
    v = w.eval_view(x)
    assert v.shape == (3, 4) and v[0].tolist() == [0, 1, 2, 3] and v[2].tolist() == [16, 17, 18, 19]


def test_training_views_are_random_segments_reproducible_under_a_seed():
    x = torch.arange(100, dtype=torch.float32)
    a = AudioAdapter(sample_rate=10, clip_seconds=2.0, augment={"gain_db": 0, "noise_p": 0, "shift": 0})
    views = [a.augment(x, torch.Generator().manual_seed(s)) for s in range(6)]
    for v in views:  # a contiguous window of the clip
        assert v.shape == (20,) and torch.equal(v, torch.arange(int(v[0]), int(v[0]) + 20, dtype=torch.float32))
    assert len({int(v[0]) for v in views}) > 1
    assert torch.equal(a.augment(x, torch.Generator().manual_seed(3)), views[3])


# -- features ---------------------------------------------------------------------------------------------------
def test_log_mel_shape_and_a_tone_peaks_in_its_mel_band():
    a = quiet()
    feats = a.prepare(torch.from_numpy(np.stack([tone(500, 1.0), tone(2000, 1.0)])), train=False)
    assert feats.shape == (2, 1, 64, 101) and a.frames() == 101
    # centre frequencies of the 64 bands on the HTK mel scale between f_min and f_max
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    centres = [inv(m) for m in np.linspace(mel(50), mel(8000), 66)[1:-1]]
    for row, f in zip(feats[:, 0].mean(-1), (500, 2000)):
        peak = centres[int(row.argmax())]
        assert abs(peak - f) / f < 0.08, (peak, f)


def test_same_clip_gives_the_same_embedding_whatever_the_batch(tmp_path):
    paths = [write(tmp_path / f"c{i}.wav", tone(200 * (i + 1), 1.7), fmt="WAV") for i in range(4)]
    a = AudioAdapter()
    model = anycl.api.build_model(
        {"anchor": "audio", "positive": "audio", "negative": "audio"}, adapter_options={"clip_seconds": 1.0}
    )
    model.eval()
    e1 = model.encode(paths)
    e2 = model.encode(paths[2:] + paths[:2], batch_size=3)
    assert torch.allclose(e1, torch.cat([e2[2:], e2[:2]]), atol=1e-5)
    assert a.modality == "audio"


# -- augmentations ----------------------------------------------------------------------------------------------
def test_noise_is_added_at_the_requested_snr_and_colour():
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(tone(440, 1.0))
    y = aug.add_noise(x, 20.0, 0.0, g)
    snr = 10 * math.log10(float(x.pow(2).mean() / (y - x).pow(2).mean()))
    assert abs(snr - 20.0) < 1e-3
    assert torch.equal(aug.add_noise(torch.zeros(100), 10.0, 1.0, g), torch.zeros(100))  # silence stays silent
    # spectral slope (log power vs log frequency) of white/pink/brown noise: 0, -1, -2
    for exponent in (0.0, 1.0, 2.0):
        n = aug.coloured_noise(2**16, exponent, torch.Generator().manual_seed(1))
        p = torch.fft.rfft(n).abs().pow(2)[1:]
        f = torch.arange(1, p.shape[0] + 1, dtype=torch.float64)
        slope = np.polyfit(np.log(f[10:5000].numpy()), np.log(p[10:5000].double().numpy()), 1)[0]
        assert abs(slope + exponent) < 0.1, (exponent, slope)


def test_gain_shift_and_the_waveform_pipeline_are_seeded():
    cfg = aug.augment_config({"noise_p": 0, "shift": 0})
    x = torch.from_numpy(tone(440))
    y = aug.waveform_view(x, cfg, torch.Generator().manual_seed(5))
    ratio = float(y.abs().max() / x.abs().max())
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6 and torch.allclose(y / ratio, x, atol=1e-6)
    shifted = aug.waveform_view(
        x, aug.augment_config({"noise_p": 0, "gain_db": 0, "shift": 0.5}), torch.Generator().manual_seed(2)
    )
    assert any(torch.equal(torch.roll(x, s), shifted) for s in range(-4000, 4001))
    full = aug.augment_config(True)
    a = aug.waveform_view(x, full, torch.Generator().manual_seed(9))
    b = aug.waveform_view(x, full, torch.Generator().manual_seed(9))
    c = aug.waveform_view(x, full, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_spec_masks_fill_bands_and_frames_with_the_mean():
    x = torch.randn(4, 1, 16, 30)
    g = torch.Generator().manual_seed(0)
    y = aug.masks(x, 2, 5, 1, g)
    for i in range(4):
        changed = (y[i, 0] != x[i, 0]).any(dim=1)  # per mel bin
        assert int(changed.sum()) < 5
        if changed.any():
            rows = torch.nonzero(changed).flatten()
            assert int(rows.max() - rows.min()) + 1 == len(rows)  # one contiguous band
            assert torch.allclose(y[i, 0, rows], x[i].mean().expand(len(rows), 30))
    z = aug.masks(x, 3, 7, 2, torch.Generator().manual_seed(1))
    assert int(((z != x).any(dim=2)).sum(dim=-1).max()) <= 12


def test_resize_crop_identity_at_scale_one_and_zoom_out_pads_with_silence():
    x = torch.randn(3, 1, 8, 20)
    assert torch.allclose(aug.resize_crop(x, (1.0, 1.0), torch.Generator().manual_seed(0)), x, atol=1e-5)
    y = aug.resize_crop(x, (1.5, 1.5), torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.all(y >= x.amin(dim=(1, 2, 3), keepdim=True) - 1e-5)


def test_resize_crop_per_axis_scales_only_the_axes_it_names():
    """{"time": ...} stretches time only: a spectrogram constant over time is unchanged (an independent reference:
    a time warp of a time-constant image is the image), and one constant over frequency is unchanged by a
    frequency-only crop; the pair form equals the dict naming both axes with that pair."""
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    over_freq = torch.randn(4, 1, 8, 1).expand(4, 1, 8, 20).contiguous()  # varies with frequency only
    over_time = torch.randn(4, 1, 1, 20).expand(4, 1, 8, 20).contiguous()  # varies with time only
    assert torch.allclose(aug.resize_crop(over_freq, {"time": (0.5, 0.9)}, g()), over_freq, atol=1e-5)
    assert not torch.allclose(aug.resize_crop(over_time, {"time": (0.5, 0.9)}, g()), over_time, atol=1e-3)
    assert torch.allclose(aug.resize_crop(over_time, {"freq": (0.5, 0.9)}, g()), over_time, atol=1e-5)
    x = torch.randn(3, 1, 8, 20)
    both = aug.resize_crop(x, (0.6, 1.5), g())
    assert torch.equal(both, aug.resize_crop(x, {"time": (0.6, 1.5), "freq": (0.6, 1.5)}, g()))
    assert aug.rrc_extents({"time": [0.6, 1.5]}) == ((0.6, 1.5), (1.0, 1.0))


@pytest.mark.parametrize(
    "scale, message",
    [
        ({"tempo": [0.8, 1.2]}, "takes the keys 'time' and 'freq'"),
        ([1.5, 0.6], "low <= high"),
        ([0.6], "a \\(low, high\\) pair"),
        ({"time": [0, 1.2]}, "'rrc_scale' time must be a \\(low, high\\) pair of positive numbers"),
        ("wide", "a \\(low, high\\) pair"),
    ],
)
def test_a_bad_resize_crop_range_is_refused_when_the_adapter_is_made(scale, message):
    with pytest.raises(ConfigError, match=message):
        AudioAdapter(augment={"rrc_scale": scale})


def test_mixup_matches_the_power_domain_formula_and_is_replay_safe():
    x = torch.randn(4, 1, 8, 10)
    bank = aug.MixupBank(16)
    g = torch.Generator().manual_seed(7)
    first = bank(x, 0.4, g)  # the bank is empty: mixed with rolled items of the batch
    g2 = torch.Generator().manual_seed(7)
    lam = aug._uniform(g2, 0.0, 0.4, (4, 1, 1, 1))
    shift = int(torch.randint(1, 4, (1,), generator=g2))
    ref = torch.log((1 - lam) * x.exp() + lam * x.roll(shift, 0).exp())
    assert torch.allclose(first, ref, atol=1e-5)
    # replay (GradCache restores the generator): identical output, nothing added twice
    g.manual_seed(7)
    again = bank(x, 0.4, g)
    assert torch.allclose(again, first) and len(bank._pending) == 1
    # the next batch reads the bank of earlier batches
    g3 = torch.Generator().manual_seed(8)
    bank(torch.randn(4, 1, 8, 10), 0.4, g3)
    assert len(bank.bank) == 4


def test_prepare_is_reproducible_under_a_seed_and_eval_is_deterministic():
    a = AudioAdapter()
    waves = torch.from_numpy(np.stack([tone(300, 1.0), noise(1.0)]))
    ev = a.prepare(waves, train=False)
    assert torch.equal(ev, a.prepare(waves, train=False))
    strong = dict(augment="strong")
    t1 = AudioAdapter(**strong).prepare(waves, train=True, generator=torch.Generator().manual_seed(1))
    t2 = AudioAdapter(**strong).prepare(waves, train=True, generator=torch.Generator().manual_seed(1))
    t3 = AudioAdapter(**strong).prepare(waves, train=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(t1, t2) and not torch.equal(t1, t3) and t1.shape == ev.shape


def test_default_augmentation_masks_the_spectrogram_only_and_strong_does_more():
    """The default views differ by segment, gain and shift (the waveform) and by narrow masks on the log-mels: where
    a default view differs from the evaluation view it holds the item's mean; 'strong' also stretches and mixes."""
    waves = torch.from_numpy(np.stack([tone(300, 1.0), noise(1.0)]))
    ev = AudioAdapter().prepare(waves, train=False)
    tr = AudioAdapter().prepare(waves, train=True, generator=torch.Generator().manual_seed(1))
    changed = tr != ev
    assert changed.any()
    for i in range(2):  # two fills at most: the frequency mask's, then the time mask's
        assert len(tr[i][changed[i]].unique()) <= 2
    bands = AudioAdapter(augment={"time_mask": 0}).prepare(
        waves, train=True, generator=torch.Generator().manual_seed(1)
    )
    for i in range(2):  # a frequency mask alone fills whole bands with the item's mean
        hit = (bands[i] != ev[i]).any(dim=-1)  # (1, mels)
        assert hit.any() and torch.allclose(bands[i][hit], ev[i].mean().expand_as(bands[i][hit]), atol=1e-5)
    off = AudioAdapter(augment={"freq_mask": 0, "time_mask": 0})
    assert torch.equal(off.prepare(waves, train=True, generator=torch.Generator().manual_seed(1)), ev)
    strong = AudioAdapter(augment="strong").prepare(waves, train=True, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(strong, ev)
    cfg = aug.augment_config(True)
    assert cfg["noise_p"] == 0 and not cfg["mixup"] and not cfg["rrc_scale"]
    assert (cfg["freq_mask"], cfg["time_mask"], cfg["masks"]) == (8, 10, 1)
    assert cfg["segment"] and cfg["gain_db"] > 0 and cfg["shift"] > 0


def test_augment_presets_and_overrides():
    strong = aug.augment_config("strong")
    assert strong["noise_p"] == 0.5 and strong["mixup"] == 0.4 and list(strong["rrc_scale"]) == [0.6, 1.5]
    tuned = aug.augment_config({"preset": "strong", "mixup": 0.2, "freq_mask": None})
    assert tuned["mixup"] == 0.2 and tuned["freq_mask"] == 0 and tuned["noise_p"] == 0.5
    assert aug.augment_config({"mixup": 0.2})["noise_p"] == 0  # a dict without a preset updates the default
    assert aug.augment_config("none") == aug.augment_config(False)
    with pytest.raises(ConfigError, match="unknown audio augmentation preset 'byol'"):
        AudioAdapter(augment="byol")
    with pytest.raises(ConfigError, match="unknown audio augmentation preset"):
        AudioAdapter(augment={"preset": "loud"})
    with pytest.raises(ConfigError, match="augment must be True, False, a preset name"):
        AudioAdapter(augment=3)


def test_content_preset_is_the_default_with_wider_frequency_masks():
    """augment="content": the default's settings but frequency masks up to 16 bins, nothing else."""
    content, default = aug.augment_config("content"), aug.augment_config(True)
    assert {k for k in content if content[k] != default[k]} == {"freq_mask"}
    assert (content["freq_mask"], content["time_mask"]) == (16, 10)
    assert "masks" in aug.describe_augment(content)


@pytest.mark.parametrize(
    "augment, named",
    [
        (True, set()),
        (None, set()),
        (False, set()),
        ("default", set()),
        ("content", {"freq_mask"}),
        ("strong", {"noise_p", "mixup", "rrc_scale"}),
        ({"gain_db": 3}, {"gain_db"}),
        ({"preset": "strong", "time_mask": 0}, {"noise_p", "mixup", "rrc_scale", "time_mask"}),
    ],
)
def test_named_settings_are_what_the_user_chose_not_what_the_default_brings(augment, named):
    assert aug.named_settings(augment) == named


def test_adapter_pickles_for_data_loader_workers():
    a = AudioAdapter(augment={"mixup": 0.2})
    a.prepare(torch.randn(2, 16000), train=True, generator=torch.Generator().manual_seed(0))
    b = pickle.loads(pickle.dumps(a))
    assert b.options == a.options and b._mels == {}


# -- fit, probes, save/load ---------------------------------------------------------------------------------
def _clips(tmp_path, n_per_class=6):
    """Two classes: low tones and noise bursts, of varying length and pitch."""
    items, labels = [], []
    for i in range(n_per_class):
        items.append(write(tmp_path / f"tone_{i}.wav", tone(150 + 40 * i, 0.4 + 0.1 * i), fmt="WAV"))
        labels.append("tone")
        items.append(write(tmp_path / f"noise_{i}.flac", noise(0.4 + 0.1 * i, seed=i)))
        labels.append("noise")
    return items, labels


FAST = dict(
    epochs=1,
    batch_size=6,
    progress=False,
    adapter_options={"clip_seconds": 0.5},
    encoder_options={"channels": [8, 16], "embedding_dim": 32},
)


def test_fit_folder_with_probe_evaluation_then_save_and_load(tmp_path):
    items, labels = _clips(tmp_path)
    probe = anycl.evaluation.ProbeEvaluator(items[:8], labels[:8], items[8:], labels[8:], k=3)
    model = anycl.fit(str(tmp_path), modality="audio", eval_dataset=probe, **FAST)
    metrics = model.trainer.eval_history[-1]
    assert 0 <= metrics["knn@3_accuracy"] <= 1 and 0 <= metrics["linear_probe_accuracy"] <= 1
    emb = model.encode(items)
    assert emb.shape == (12, 32) and torch.equal(emb, model.encode(items))
    model.save(str(tmp_path / "m"))
    again = anycl.load(str(tmp_path / "m"))
    assert torch.allclose(again.encode(items), emb, atol=1e-5)
    assert again.tower("audio").adapter.options["clip_seconds"] == 0.5


def test_labelled_clips_as_eval_dataset_give_knn_accuracy(tmp_path):
    items, labels = _clips(tmp_path, 4)
    model = anycl.fit(
        items, modality="audio", eval_dataset=[{"anchor": x, "label": y} for x, y in zip(items, labels)], **FAST
    )
    assert any(k.startswith("knn@") for k in model.trainer.eval_history[-1])


def test_fit_skips_unreadable_clips_by_option_and_raises_by_default(tmp_path, caplog):
    items, _ = _clips(tmp_path, 4)
    (tmp_path / "zz_corrupt.wav").write_bytes(b"garbage")
    every = {"sampler_options": {"drop_last": False}}  # 9 clips, batches of 6: the short batch is read too
    with pytest.raises(DataError, match="zz_corrupt.wav"):
        anycl.fit(str(tmp_path), modality="audio", **FAST, **every)
    with caplog.at_level(logging.WARNING, logger="anycl"):
        model = anycl.fit(str(tmp_path), modality="audio", on_bad_item="skip", **FAST, **every)
    assert model.trainer.builder.skipped == 1
    assert "skipped 1 rows" in caplog.text and "zz_corrupt.wav" in caplog.text


def test_fit_hf_audio_column_and_array_dicts_and_a_custom_encoder(tmp_path):
    import datasets

    items, _ = _clips(tmp_path, 3)
    ds = datasets.Dataset.from_dict({"audio": items}).cast_column("audio", datasets.Audio(decode=False))
    model = anycl.fit(ds, modality="audio", **FAST)
    assert model.encode(items[:2]).shape == (2, 32)
    arrays = [{"array": tone(200 + 50 * i, 0.5), "sampling_rate": SR} for i in range(6)]
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
    enc(torch.zeros(1, 1, 64, 51))
    enc.embedding_dim = 16
    model = anycl.fit(
        arrays, modality="audio", encoder=enc, **{k: v for k, v in FAST.items() if k != "encoder_options"}
    )
    assert model.encode(arrays).shape == (6, 16)


def test_an_encoder_that_does_not_take_windows_gets_each_window_and_the_mean_of_their_embeddings():
    # a custom encoder for (N, 1, F, T) log-mels, no accepts_windows: the tower folds the window axis into the batch
    a = AudioAdapter(clip_seconds=0.5, eval_windows=3)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 51, 6)).eval()
    tower = Tower(a, enc)
    wave = torch.from_numpy(np.concatenate([tone(300, 0.5), noise(0.5), tone(900, 0.5)]))
    batch = a.collate([a.eval_view(wave), a.eval_view(wave.flip(0))])
    feats = a.prepare(batch, train=False)
    assert feats.shape == (2, 3, 1, 64, 51) and a.window_count(feats) == 3
    with torch.no_grad():
        got = tower(batch, train=False, use_head=False)
        want = torch.stack([enc(f).mean(0) for f in feats])  # each item's windows as a batch of their own
    assert got.shape == (2, 6) and torch.allclose(got, want, atol=1e-6)


def test_sliding_window_evaluation_averages_window_embeddings(tmp_path):
    a = AudioAdapter(clip_seconds=0.5, eval_crop="windows", eval_windows=3)
    enc = a.default_encoder(channels=[8], embedding_dim=8).eval()
    wave = torch.from_numpy(np.concatenate([tone(300, 0.5), noise(0.5), tone(900, 0.5)]))
    view = a.eval_view(wave)
    feats = a.prepare(a.collate([view]), train=False)
    assert feats.shape == (1, 3, 1, 64, 51)
    with torch.no_grad():
        per_window = enc(feats[0])
        assert torch.allclose(enc(feats)[0], per_window.mean(0), atol=1e-6)

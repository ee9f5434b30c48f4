"""benchmarks/bench_audio.py's protocol pieces on made-up file lists (no audio is read): the dev split never
hands out a test clip, and the target verdicts follow issue 16's margins."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import audio_report  # noqa: E402
import audiosets  # noqa: E402
import bench_audio  # noqa: E402
import bench_audio_stats  # noqa: E402


def _sonic_like():
    files = [f"/x/{c}_{i}.flac" for c in ("bass", "drum", "loop") for i in range(12)]
    return audiosets.AudioSet(
        "sonic-pi", "fake", files, [audiosets.sonic_category(f) for f in files], audiosets.stratified_split
    )


def _asterisk_like():
    files, labels, groups = [], [], []
    for lang in ("en", "fr", "ru"):
        for i in range(20):
            rel = f"digits/{i}.wav"
            files.append(f"/a/{lang}/{rel}")
            labels.append(lang)
            groups.append(rel)
    return audiosets.AudioSet("asterisk", "fake", files, labels, audiosets.prompt_split, groups)


@pytest.mark.parametrize("make", [_sonic_like, _asterisk_like])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dev_split_uses_training_clips_only(make, seed):
    s = make()
    train, _, test, _ = s.split(seed, 0.4)
    d_train, d_train_y, d_dev, d_dev_y = bench_audio.dev_split(s, seed, 0.4)
    assert d_train and d_dev
    assert set(d_train) | set(d_dev) == set(train)  # exactly the seed's training clips, split in two
    assert not set(d_train) & set(d_dev)
    assert not (set(d_train) | set(d_dev)) & set(test)
    label = dict(zip(s.files, s.labels))
    assert d_train_y == [label[f] for f in d_train] and d_dev_y == [label[f] for f in d_dev]
    if s.groups is not None:  # a prompt never on both sides of the dev split either
        group = dict(zip(s.files, s.groups))
        assert not {group[f] for f in d_train} & {group[f] for f in d_dev}


def _result(pre_lin, pre_knn, lm_lin=0.5, lm_knn=0.5, rnd_lin=0.5, rnd_knn=0.5):
    return {
        "pretrained": {"linear": pre_lin, "knn": pre_knn},
        "logmel": {"linear": lm_lin, "knn": lm_knn},
        "random": {"linear": rnd_lin, "knn": rnd_knn},
    }


def test_targets_in_words():
    lines = audio_report.targets([_result(0.62, 0.55), _result(0.60, 0.45)])  # means: linear 0.61, kNN 0.50
    assert len(lines) == 4
    assert lines[0].endswith("0.610, met.")  # 0.61 >= 0.5 + 0.10
    assert "**not met**" in lines[1]  # kNN 0.50 is not above 0.50
    assert lines[2].endswith("0.610, met.")  # 0.61 >= 0.5 + 0.08


def test_targets_say_when_a_margin_cannot_be_reached():
    lines = audio_report.targets([_result(0.99, 0.9, lm_lin=0.95)])
    assert "**not met**" in lines[0] and "unreachable" in lines[0]


def test_dev_table_has_one_row_per_run_with_seed_means(tmp_path):
    rec = {
        "date": "d",
        "set": "asterisk",
        "seeds": [0, 1],
        "command": "python benchmarks/bench_audio.py --dev --epochs 9",
    }
    for name in ("logmel", "random", "pretrained"):
        rec[f"{name}_linear"], rec[f"{name}_knn"] = [0.5, 0.7], [0.2, 0.4]
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "seeds": [3]}) + "\n")
    rows = audio_report.dev_table(path).splitlines()[2:]
    assert len(rows) == 2
    assert rows[0] == "| d | asterisk | 0,1 | `--epochs 9` | 0.600 / 0.300 | 0.600 / 0.300 | 0.600 / 0.300 |"


def test_the_statistics_teacher_gives_each_bands_mean_and_std_standardised_over_the_batch():
    x = torch.randn(5, 1, 64, 30, generator=torch.Generator().manual_seed(0)) * 2 - 3
    got = bench_audio_stats.StatsTeacher()(x)
    lm = x[:, 0].numpy().astype(np.float64)
    f = np.concatenate([lm.mean(-1), lm.std(-1, ddof=1)], 1)  # torch.std is the unbiased estimate
    ref = (f - f.mean(0)) / f.std(0, ddof=1)
    assert got.shape == (5, 128) == (5, bench_audio_stats.StatsTeacher.embedding_dim)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-4)
    both = bench_audio_stats.side_by_side(torch.ones(2, 3), torch.zeros(2, 1))
    np.testing.assert_allclose(both.numpy(), np.tile([3**-0.5] * 3 + [0.0], (2, 1)), rtol=1e-6)


def test_the_window_candidates_take_k_windows_and_restore_the_adapter():
    from types import SimpleNamespace

    from anycl.adapters.audio import AudioAdapter

    adapter = AudioAdapter(sample_rate=8000, eval_crop="center")
    model = SimpleNamespace(towers={"audio": SimpleNamespace(adapter=adapter)})
    wave = torch.arange(3 * 8000, dtype=torch.float32)  # 3 s: windows of 1 s start at 0 .. 2 s
    for name, k in (("windows", 3), ("5 windows", 5), ("8 windows", 8)):  # "windows": the adapter's own count
        undo = [change(model) for change in bench_audio.POST_HOC[name]]
        views = adapter.eval_view(wave)
        assert views.shape == (k, 8000)
        assert views[0, 0] == 0 and views[-1, 0] == 2 * 8000  # evenly spaced from the start to the end
        for u in reversed(undo):
            u()
        assert (adapter.eval_crop, adapter.eval_windows) == ("center", 3)


@pytest.mark.parametrize("weight", [0.5, 0.75])
def test_the_weight_space_candidates_mix_each_float_tensor_with_the_start_and_restore_it(weight):
    from types import SimpleNamespace

    from anycl.adapters.audio_encoder import AudioCNN

    torch.manual_seed(0)
    start, tuned = AudioCNN(channels=[4, 4]), AudioCNN(channels=[4, 4])
    tuned.input_norm.running_mean.fill_(2.0)  # a buffer too, not only the parameters
    tuned.input_norm.num_batches_tracked.fill_(7)  # an integer buffer is kept, not mixed
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    model = SimpleNamespace(
        towers={"audio": SimpleNamespace(encoder=tuned, adapter=None)}, bench_start=start.state_dict()
    )
    undo = bench_audio._toward_start(weight)(model)
    for k, v in tuned.state_dict().items():
        if v.is_floating_point():
            expected = weight * before[k] + (1 - weight) * start.state_dict()[k]
            torch.testing.assert_close(v, expected, rtol=0, atol=1e-6)
        else:
            assert torch.equal(v, before[k])
    assert tuned.input_norm.running_mean[0].item() == pytest.approx(weight * 2.0)  # start's running mean is 0
    undo()
    for k, v in tuned.state_dict().items():
        assert torch.equal(v, before[k])
    # the floors (no start) are left as they are
    floor = SimpleNamespace(towers={"audio": SimpleNamespace(encoder=tuned, adapter=None)})
    bench_audio._toward_start(weight)(floor)()
    assert all(torch.equal(v, before[k]) for k, v in tuned.state_dict().items())


def test_the_layers_candidate_adds_each_blocks_pooled_channels_and_restores_the_embedding():
    from types import SimpleNamespace

    import torch.nn.functional as F

    from anycl.adapters.audio_encoder import AudioCNN

    torch.manual_seed(0)
    encoder = AudioCNN(n_mels=16, channels=[4, 6], embedding_dim=8).eval()
    x = torch.randn(3, 1, 16, 40)
    own = encoder(x)
    seen = []  # every block's output, caught at its ReLU: an independent reading of the blocks
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
        for m in encoder.features
        if isinstance(m, torch.nn.ReLU)
    ]
    undo = bench_audio._layers(SimpleNamespace(towers={"audio": SimpleNamespace(encoder=encoder)}))
    with torch.no_grad():
        got = encoder(x)
    for h in hooks:
        h.remove()
    blocks = seen[-2:]  # the blocks of the candidate's pass (one pass: the embedding's own)
    expected_blocks = F.normalize(
        torch.cat([F.normalize(torch.cat([b.mean(dim=(2, 3)), b.amax(dim=(2, 3))], 1), dim=1) for b in blocks], 1),
        dim=1,
    )
    assert got.shape == (3, 8 + 2 * (4 + 6))
    torch.testing.assert_close(got[:, :8], F.normalize(own, dim=1))
    torch.testing.assert_close(got[:, 8:], expected_blocks)
    # K evaluation windows are averaged over the new embedding as over the old one
    windows = torch.randn(2, 3, 1, 16, 40)
    with torch.no_grad():
        torch.testing.assert_close(encoder(windows), encoder(windows.flatten(0, 1)).view(2, 3, -1).mean(1))
    undo()
    torch.testing.assert_close(encoder(x), own)

"""Issue 29's audio protocol sets (benchmarks/audiosets_protocol.py) and report (audio_report.py) on made-up file
lists and records: no package data and no audio is read."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import audio_report  # noqa: E402
import audiosets  # noqa: E402
import audiosets_protocol as asp  # noqa: E402
import bench_audio  # noqa: E402


def _grouped(n_groups=12, per_group=5):
    files, labels, groups = [], [], []
    for g in range(n_groups):
        for i in range(per_group):
            files.append(f"/v/g{g}/{i}.wav")
            labels.append(f"c{i}")
            groups.append(f"g{g}")
    return files, labels, groups


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("fraction", [0.05, 0.4, 0.95])
def test_group_split_keeps_every_group_on_one_side(seed, fraction):
    files, labels, groups = _grouped()
    train, tr_y, test, te_y = asp.group_split(files, labels, groups, seed, fraction)
    group = dict(zip(files, groups))
    assert sorted(train + test) == sorted(files)
    assert not {group[f] for f in train} & {group[f] for f in test}
    n_test = len({group[f] for f in test})
    assert n_test == min(max(1, round(fraction * 12)), 11)  # at least one group each side
    label = dict(zip(files, labels))
    assert tr_y == [label[f] for f in train] and te_y == [label[f] for f in test]


def test_group_split_depends_on_seed_not_on_file_order():
    files, labels, groups = _grouped()
    a = asp.group_split(files, labels, groups, 3, 0.4)
    rev = asp.group_split(files[::-1], labels[::-1], groups[::-1], 3, 0.4)
    assert set(a[2]) == set(rev[2])
    assert any(set(asp.group_split(files, labels, groups, s, 0.4)[2]) != set(a[2]) for s in range(4, 9))


def test_group_split_refuses_a_single_group():
    with pytest.raises(ValueError, match="at least 2 groups"):
        asp.group_split(["a", "b"], ["x", "y"], ["g", "g"], 0, 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dev_split_of_a_grouped_set_keeps_groups_apart(seed):
    files, labels, groups = _grouped(20)
    s = audiosets.AudioSet("espeak-words", "fake", files, labels, audiosets.grouped, groups)
    train, _, test, _ = s.split(seed, 0.4)
    d_train, _, d_dev, _ = bench_audio.dev_split(s, seed, 0.4)
    group = dict(zip(files, groups))
    assert set(d_train) | set(d_dev) == set(train) and not set(d_dev) & set(test)
    assert not {group[f] for f in d_train} & {group[f] for f in d_dev}


@pytest.mark.parametrize(
    "name, role",
    [
        ("warrior_attack3.wav", "attack"),
        ("anubis_warrior_ack12.ogg", "ack"),
        ("die_2.wav", "die"),
        ("Archer_Select1.WAV", "select"),
        ("hit.ogg", "hit"),
        ("sheep1.wav", None),
        ("warrior_attack1b.wav", None),
        ("walk.wav", None),
    ],
)
def test_megaglest_role_from_the_file_name(name, role):
    assert asp.megaglest_role(f"/f/egypt/units/x/sounds/{name}") == role


def test_megaglest_unit_is_faction_and_unit():
    path = "/usr/share/games/megaglest/techs/megapack/factions/norsemen/units/axeman/sounds/axe_die1.wav"
    assert asp.megaglest_unit(path) == "norsemen/axeman"


@pytest.mark.parametrize("name, phrase", [("Ow3.ogg", "ow"), ("Ooff1.ogg", "ooff"), ("Uh-oh.ogg", "uh-oh")])
def test_hedgewars_phrase_drops_the_take_number(name, phrase):
    assert asp.hedgewars_phrase(f"/v/Pirate/{name}") == phrase


def test_espeak_speaker_is_fixed_by_the_name_and_in_range():
    for v in ("m1", "f3", "whisper", "Half-LifeAnnouncementSystem"):
        accent, pitch, speed = asp.espeak_speaker(v)
        assert asp.espeak_speaker(v) == (accent, pitch, speed)
        assert accent in asp.ACCENTS and 30 <= pitch < 70 and 140 <= speed < 210
    assert len({asp.espeak_speaker(f"v{i}") for i in range(40)}) > 30  # speakers differ between variants


def test_parse_variants_reads_the_file_column():
    listing = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  variant         --/M      Adam               !v/adam              \n"
        " 5  variant         --/F      Old Lady           !v/f5                \n"
        " 5  variant         --/M      Adam again         !v/adam              \n"
    )
    assert asp.parse_variants(listing) == ["adam", "f5"]


def _rec(name, pre, logmel=(0.5, 0.4), rnd=(0.5, 0.45), command="python benchmarks/bench_audio.py --set x --dev"):
    r = {"set": name, "seeds": [0, 1], "command": command}
    for who, (lin, knn) in (("pretrained", pre), ("logmel", logmel), ("random", rnd)):
        r[f"{who}_linear"], r[f"{who}_knn"] = [lin - 0.01, lin + 0.01], [knn, knn]
    return r


def test_issue29_margins_against_each_floor():
    m = audio_report.issue29_margins(_rec("a", (0.7, 0.5)))
    assert m["linear vs random + 0.08"] == pytest.approx(0.7 - 0.5 - 0.08)
    assert m["linear vs log-mel + 0.05"] == pytest.approx(0.7 - 0.5 - 0.05)
    assert m["kNN vs random"] == pytest.approx(0.05) and m["kNN vs log-mel"] == pytest.approx(0.1)
    at_ceiling = audio_report.issue29_margins(_rec("a", (0.95, 0.9), logmel=(0.93, 0.8)))
    assert at_ceiling["linear vs log-mel + 0.05"] is None


def test_settings_of_drops_set_record_threads_and_dev():
    cmd = "PYTHONPATH=. python benchmarks/bench_audio.py --set a --dev --record p.jsonl --threads 1 --eval-crop windows"
    assert audio_report.settings_of({"command": cmd}) == "--eval-crop windows"
    assert audio_report.settings_of({"command": "python benchmarks/bench_audio.py --set a --dev"}) == "(the default)"
    cmd = "python benchmarks/bench_audio.py --seeds 1 2 --set a --dev --post-hoc --lr 0.1 --seeds 4"
    assert audio_report.settings_of({"command": cmd}) == "--lr 0.1"
    cmd = "python benchmarks/bench_audio.py --set a --record-test --record t.jsonl --post-hoc --seeds 0"
    assert audio_report.settings_of({"command": cmd}) == "(the default)"


@pytest.mark.parametrize("argv", [["--record-test"], ["--record-test", "--dev", "--record", "t.jsonl"]])
def test_record_test_needs_its_own_file_and_the_test_split(argv, capsys):
    with pytest.raises(SystemExit):
        bench_audio.main(argv)
    assert "--record-test scores the test split" in capsys.readouterr().err


def test_protocol_report_names_the_worst_margin_and_verdicts():
    recs = [_rec("a", (0.7, 0.5)), _rec("b", (0.55, 0.43)), _rec("b", (0.9, 0.9), command="x bench_audio.py --lr 1")]
    text = audio_report.protocol_report(recs, ("a", "b", "c"))
    default, other = text.split("### Recipe: `--lr 1`")
    assert "**-0.030**" in default and "(b, linear vs random + 0.08)" in default  # 0.55 - 0.5 - 0.08
    assert "not run on c" in default
    assert "- a: linear vs random + 0.08: met (+0.120)" in default
    assert "kNN vs random: **not met** (-0.020)" in default
    assert "| b | 0,1 |" in other and "| a |" not in other


def test_post_hoc_candidates_become_recipes_of_their_own():
    rec = _rec("a", (0.7, 0.5), command="python benchmarks/bench_audio.py --set a --dev --post-hoc")
    for who, lin in (("random", 0.4), ("pretrained", 0.8)):
        rec[f"post_hoc:windows:{who}_linear"], rec[f"post_hoc:windows:{who}_knn"] = [lin, lin], [lin, lin]
    runs = audio_report.with_post_hoc([rec])
    assert [audio_report.settings_of(r) for r in runs] == ["(the default)", "(the default) + windows at encode"]
    pseudo = runs[1]
    assert pseudo["pretrained_linear"] == [0.8, 0.8] and pseudo["random_knn"] == [0.4, 0.4]
    assert pseudo["logmel_linear"] == rec["logmel_linear"]  # the floor that needs no encoder is shared
    m = audio_report.issue29_margins(pseudo)
    assert m["linear vs random + 0.08"] == pytest.approx(0.8 - 0.4 - 0.08)


def test_runs_of_one_seed_each_merge_and_a_rerun_replaces_its_seed():
    a0, a1, a1_again = _rec("a", (0.6, 0.5)), _rec("a", (0.7, 0.5)), _rec("a", (0.9, 0.5))
    a0["seeds"], a1["seeds"], a1_again["seeds"] = [0, 9], [1], [1]
    for r in (a1, a1_again):
        for k in audio_report.SCORES:
            r[k] = r[k][:1]
    merged = audio_report.merged_by_recipe([a1, a0, a1_again])["(the default)"]["a"]
    assert merged["seeds"] == [0, 1, 9]
    assert merged["pretrained_linear"] == [0.59, 0.89, 0.61]  # seed 0, seed 1 (the rerun), seed 9


def test_screening_table_reads_one_seed_and_ranks_full_recipes_by_worst_margin():
    # seed 0 of _rec: linear = lin - 0.01; floors: log-mel 0.49 / 0.4, random 0.49 / 0.45
    recs = [
        _rec("a", (0.7, 0.5)),
        _rec("b", (0.55, 0.43)),
        _rec("a", (0.9, 0.9), command="x bench_audio.py --lr 1"),
        _rec("b", (0.8, 0.7), command="x bench_audio.py --lr 1"),
        _rec("a", (0.99, 0.99), command="x bench_audio.py --lr 2"),  # one set only: ranked after the full ones
    ]
    text = audio_report.screening_table(recs, ("a", "b"), seed=0)
    lines = text.splitlines()
    assert lines[0] == "| recipe (seed 0) | a lin / kNN | b lin / kNN | worst margin (where) |"
    assert lines[2].startswith("| `--lr 1` | 0.890 / 0.900 | 0.790 / 0.700 | ")
    assert lines[3].startswith(
        "| `(the default)` | 0.690 / 0.500 | 0.540 / 0.430 | -0.030 (b, linear vs random + 0.08)"
    )
    assert lines[4].startswith("| `--lr 2` | 0.980 / 0.990 | — |") and "1 of 2 sets run" in lines[4]
    assert "| `(the default)`" not in audio_report.screening_table(recs, ("a", "b"), seed=5)  # no seed 5: no row


def test_margin_interval_is_exact_where_nothing_varies_and_near_the_normal_one_elsewhere():
    same = ["0110" * 25, "1010" * 20]  # two seeds: 100 and 80 clips
    assert audio_report.margin_interval(same, same, 0.08) == pytest.approx((-0.08, -0.08))
    right, wrong = ["1" * 100, "1" * 80], ["0" * 100, "0" * 80]
    assert audio_report.margin_interval(right, wrong, 0.05) == pytest.approx((0.95, 0.95))
    # one seed, 400 clips: the recipe right where the floor is wrong on 100, the reverse on 60 (a paired design);
    # the margin 0.1 has the standard error sqrt(p(1-p)...)/sqrt(n) of the per-clip differences (+1, -1, 0)
    recipe = "1" * 100 + "0" * 60 + "1" * 120 + "0" * 120
    floor = "0" * 100 + "1" * 60 + "1" * 120 + "0" * 120
    lo, hi = audio_report.margin_interval([recipe], [floor], 0.0)
    d = np.array([1] * 100 + [-1] * 60 + [0] * 240, dtype=float)
    se = d.std() / np.sqrt(len(d))
    assert lo < d.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    with pytest.raises(ValueError, match="different lengths"):
        audio_report.margin_interval(["01"], ["011"], 0.0)


def test_the_protocol_report_gives_intervals_where_runs_recorded_their_hits():
    plain = _rec("a", (0.7, 0.5))
    assert "95 % interval" not in audio_report.protocol_report([plain], ("a",))
    rec = {"set": "a", "seeds": [0], "command": "python benchmarks/bench_audio.py --set a --dev --post-hoc"}
    hits = {"pretrained": "1111111100", "random": "1111000000", "logmel": "1111100000"}  # 0.8, 0.4, 0.5 of 10
    for who, h in hits.items():
        for probe in ("linear", "knn"):
            rec[f"{who}_{probe}"], rec[f"hits:{who}_{probe}"] = [h.count("1") / 10], [h]
    for who in ("pretrained", "random"):  # the post-hoc read: both encoders right on the same 6 clips
        for probe in ("linear", "knn"):
            rec[f"post_hoc:windows:{who}_{probe}"] = [0.6]
            rec[f"post_hoc:windows:hits:{who}_{probe}"] = ["1111110000"]
    text = audio_report.protocol_report([rec], ("a",))
    default, windows = text.split("+ windows at encode")
    found = re.search(r"linear vs random \+ 0.08: met \(\+0.320, 95 % interval ([-+.\d]+) to ([-+.\d]+)\)", default)
    assert found and float(found[1]) <= 0.32 <= float(found[2]) and float(found[1]) < float(found[2])
    # the pseudo-run reads the candidate's own hits: equal on every clip, so the interval is the margin itself
    assert "linear vs random + 0.08: **not met** (-0.080, 95 % interval -0.080 to -0.080)" in windows
    assert "kNN vs log-mel: met (+0.100, 95 % interval" in windows  # the log-mel floor's hits are shared
    assert audio_report.issue29_margins(rec)["kNN vs random"] == pytest.approx(0.4)  # the hits are not averaged


def test_the_probes_hits_are_per_clip_and_their_mean_is_the_accuracy():
    from anycl.evaluation import knn_accuracy, knn_hits, linear_probe_accuracy, linear_probe_hits

    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(40, 8, generator=g), torch.randn(20, 8, generator=g)
    tr_y, te_y = [int(x[0] > 0) for x in tr], [int(x[0] > 0) for x in te]
    te_y[0] = 1 - te_y[0]  # one test label the probes cannot get
    tr, te = torch.nn.functional.normalize(tr, dim=1), torch.nn.functional.normalize(te, dim=1)
    lin, knn = linear_probe_hits(tr, tr_y, te, te_y), knn_hits(tr, tr_y, te, te_y, k=5)
    assert lin.shape == (20,) and tuple(knn.shape) == (20,)
    assert float(lin.mean()) == linear_probe_accuracy(tr, tr_y, te, te_y)
    assert float(knn.float().mean()) == knn_accuracy(tr, tr_y, te, te_y, k=5)
    assert not lin[0] and not knn[0]
    scores = bench_audio.probes(tr, tr_y, te, te_y, seed=0)
    assert scores["hits"]["linear"] == "".join("1" if x else "0" for x in lin)
    assert scores["linear"] == scores["hits"]["linear"].count("1") / 20

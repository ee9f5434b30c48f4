"""The training report: its verdicts (anycl.report.health), nearest neighbours for text, images and audio, the
embedding map coloured by label, and the figures' shading and ticks. The run-level checks (a whole `fit`) are in
tests/test_cli.py; the page in a real browser at the end of this file (slow)."""

import base64
import io
import json
import re
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import anycl
from anycl.data.inputs import to_rows
from anycl.report import health
from anycl.report.build import write_report
from anycl.report.examples import RetrievalExamples, folder_labels, label_agreement
from anycl.report.figures import _plt, collapse_figure, shade_against, similarity_figure, step_axis
from anycl.training.collapse import CollapseWatch

CHROMIUM = "/usr/bin/chromium"


def run(steps, positive, negative, spread, loss):
    """A logged history: one point per step with the given curves (callables of the step)."""
    return [
        {
            "step": s,
            "loss": loss(s),
            "lr": 1e-3,
            "positive": positive(s),
            "hardest_negative": negative(s),
            "spread": spread(s),
        }
        for s in range(1, steps + 1)
    ]


HEALTHY = run(100, lambda s: 0.5 + s / 400, lambda s: 0.4 - s / 400, lambda s: 0.8, lambda s: 3.0 - s / 50)
COLLAPSED = run(100, lambda s: 0.99, lambda s: 0.98, lambda s: 0.8 * (1 - s / 100) + 0.01, lambda s: 3.0 - s / 50)
INVERTED = run(100, lambda s: 0.78, lambda s: 0.94, lambda s: 0.82 - s * 0.0032, lambda s: 2.0)
CLOSING = run(100, lambda s: 0.8, lambda s: 0.3 + s / 250, lambda s: 0.8, lambda s: 3.0 - s / 50)


def statuses(found):
    return {v.rule: v.status for v in found}


# -- the verdicts -----------------------------------------------------------------------------------------------
def test_a_healthy_run_is_green_everywhere_it_can_be_judged():
    evals = [{"step": 0, "ndcg@10": 0.40}, {"step": 100, "ndcg@10": 0.55}]
    agreement = {"after": {"rate": 0.9, "chance": 0.1, "stderr": 0.02, "items": 200}}
    found = health.verdicts(HEALTHY, evals, 100, random_pair_cosine=0.1, agreement=agreement)
    assert statuses(found) == {r: "ok" for r in ("steps", "loss", "collapse", "gap", "evaluation", "neighbours")}
    assert health.headline(found).startswith("Training looks healthy")
    assert "ndcg@10 rose from 0.4000" in found[4].text


def test_a_collapsed_run_is_red_by_either_test():
    # the spread falls below 0.2 x its first value (0.81 -> 0.018)
    v = health.collapse_rule(COLLAPSED, threshold=0.1, relative=0.2)
    assert v.status == "bad" and "below the warning threshold 0.1" in v.text
    # above 0.1 but below 0.2 x its first value (0.8875 -> 0.15 < 0.1775)
    v = health.collapse_rule(run(60, *[lambda s: 0.5] * 2, lambda s: 0.9 - s * 0.0125, lambda s: 1.0), 0.1, 0.2)
    assert v.status == "bad" and "below 0.2 × its first value" in v.text
    v = health.collapse_rule(HEALTHY, random_pair_cosine=0.93)  # the spread is fine, random pairs are not
    assert v.status == "bad" and "random pairs of items score a mean cosine of 0.93 (above 0.9)" in v.text
    assert health.collapse_rule(HEALTHY, random_pair_cosine=0.9).status == "ok"  # the threshold itself holds
    assert health.collapse_rule([], random_pair_cosine=None).status == "unknown"


def test_an_inverted_gap_and_a_closing_gap_are_red():
    v = health.gap_rule(INVERTED)
    assert (
        v.status == "bad"
        and v.text.startswith("Inverted gap")
        and "0.94 on average, above the positive (0.78)" in v.text
    )
    v = health.gap_rule(CLOSING)  # first gap 0.49, last 0.10: still positive, but closing
    assert v.status == "bad" and v.text.startswith("Closing gap")
    # a gap that shrinks by no more than the tolerance is open
    flat = run(10, lambda s: 0.8, lambda s: 0.5 + s * health.GAP_TOLERANCE / 20, lambda s: 0.8, lambda s: 1.0)
    assert health.gap_rule(flat).status == "ok"
    assert health.gap_rule([{"step": 1, "loss": 1.0}]).status == "unknown"


def test_an_inverted_gap_is_amber_when_neighbours_share_labels():
    """Several items of one class per batch: the hardest "negative" is a same-class item, so it may outscore
    the positive while classes gather well."""
    good = {"after": {"rate": 0.98, "chance": 0.15, "stderr": 0.05, "items": 48}}
    classes = run(100, lambda s: 0.7, lambda s: 0.84, lambda s: 0.7, lambda s: 3.6 - s / 200)  # the digits run
    found = {v.rule: v for v in health.verdicts(classes, [], 100, agreement=good)}
    assert found["gap"].status == "warn" and "an item of the anchor's own class" in found["gap"].text
    assert "gap to read with care" in health.headline(list(found.values()))
    at_chance = {"after": {"rate": 0.15, "chance": 0.15, "stderr": 0.05, "items": 48}}
    assert {v.rule: v.status for v in health.verdicts(classes, [], 100, agreement=at_chance)}["gap"] == "bad"


def test_the_issue_run_is_judged_wrong_on_every_count_it_shows():
    """20 steps, hardest negative 0.94 above the positive 0.78, spread 0.82 → 0.50, neighbours at chance."""
    hist = run(20, lambda s: 0.78, lambda s: 0.94, lambda s: 0.82 - (s - 1) * 0.32 / 19, lambda s: 2.3)
    agreement = {"before": {"rate": 0.07}, "after": {"rate": 0.083, "chance": 0.092, "stderr": 0.02, "items": 200}}
    found = statuses(health.verdicts(hist, [], 20, agreement=agreement))
    assert found == {
        "steps": "warn",
        "loss": "bad",
        "collapse": "ok",  # 0.50 is no collapse by the rule's thresholds ...
        "gap": "bad",  # ... but the gap is inverted
        "evaluation": "unknown",
        "neighbours": "bad",  # and neighbours are at chance
    }


def test_loss_steps_and_evaluation_rules_at_their_thresholds():
    flat = [{"step": s, "loss": 2.0} for s in range(1, 6)]
    assert health.loss_rule(flat).status == "bad"
    just = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 1.0 - 1.01 * health.LOSS_MIN_DROP}]
    assert health.loss_rule(just).status == "ok"
    assert health.loss_rule([{"step": 1, "loss": 1.0}]).status == "unknown"
    negative = [{"step": 1, "loss": -1.0}, {"step": 2, "loss": -1.5}]  # negative-free losses go below 0
    assert health.loss_rule(negative).status == "ok"
    assert health.steps_rule(health.MIN_STEPS - 1).status == "warn"
    assert health.steps_rule(health.MIN_STEPS).status == "ok"
    assert "1 optimiser step (" in health.steps_rule(1).text
    same = [{"step": 0, "knn@5_accuracy": 0.5}, {"step": 9, "knn@5_accuracy": 0.5 + health.EVAL_MIN_GAIN / 2}]
    assert health.eval_rule(same).status == "bad"  # not better by more than the minimum gain
    both = [{"step": 0, "a": 0.9, "b": 0.1}, {"step": 9, "a": 0.5, "b": 0.3}]
    assert health.eval_rule(both).status == "bad"  # the first metric when none is primary
    assert health.eval_rule(both, primary="b").status == "ok"
    assert health.eval_rule([{"step": 5, "a": 1.0}]).status == "unknown"  # no step-0 baseline
    assert health.eval_rule([]).status == "unknown"


def test_neighbour_agreement_against_brute_force():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(40, 8, generator=g), dim=1)
    labels = [i % 3 for i in range(40)]
    got = label_agreement(emb, labels)
    sim = emb @ emb.T
    sim.fill_diagonal_(-2)
    nn_ = sim.argmax(1)
    assert got["rate"] == pytest.approx(np.mean([labels[int(j)] == labels[i] for i, j in enumerate(nn_)]))
    # chance: for item i, (its label's items - 1) / 39
    want = np.mean([(labels.count(y) - 1) / 39 for y in labels])
    assert got["chance"] == pytest.approx(want) and got["stderr"] == pytest.approx(np.sqrt(want * (1 - want) / 40))
    at_chance = {"after": {**got, "rate": got["chance"] + got["stderr"]}}
    assert health.neighbour_rule(at_chance).status == "bad"  # one standard error above chance is not enough
    clear = {"after": {**got, "rate": got["chance"] + 2.01 * got["stderr"]}}
    assert health.neighbour_rule(clear, "folder").status == "ok"
    assert "nearest neighbour of their class folder" in health.neighbour_rule(clear, "folder").text


# -- the figures ---------------------------------------------------------------------------------------------------
def _fills(ax):
    """(label, RGB) of each shaded band on ``ax``."""
    from matplotlib.collections import PolyCollection

    return [
        (c.get_label(), tuple(np.round(c.get_facecolor()[0][:3], 2)))
        for c in ax.collections
        if isinstance(c, PolyCollection)
    ]


GREEN, RED = (0.17, 0.63, 0.17), (0.84, 0.15, 0.16)  # matplotlib's tab:green, tab:red


def test_bands_are_green_only_where_the_rule_holds():
    plt = _plt()
    fig, ax = plt.subplots()
    shade_against(ax, [1, 2, 3], [0.78] * 3, [0.94] * 3, "positive above", "inverted")  # the issue's run
    assert _fills(ax) == [("inverted", RED)]
    fig, ax = plt.subplots()
    shade_against(ax, [1, 2, 3, 4], [0.5, 0.6, 0.6, 0.5], [0.4, 0.7, 0.5, 0.6], "positive above", "inverted")
    assert sorted(_fills(ax)) == [("inverted", RED), ("positive above", GREEN)]
    plt.close("all")


def test_similarity_and_collapse_figures_shade_an_inverted_gap_and_a_collapse_red(tmp_path, monkeypatch):
    drawn = []
    import anycl.report.figures as figures

    real = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or real(fig, path))
    similarity_figure(tmp_path / "s.png", INVERTED)
    assert [lab for lab, _ in _fills(drawn[-1].axes[0])] == ["inverted: the hardest negative above the positive"]
    history = [{**h, "alignment": 2.5, "uniformity": -0.1} for h in COLLAPSED]
    collapse_figure(tmp_path / "c.png", history, 0.1, 0.2)
    spread, align, _ = drawn[-1].axes
    assert ("below: collapse", RED) in _fills(spread) and ("above the warning level", GREEN) in _fills(spread)
    assert _fills(align) == [("farther than random pairs", RED)]  # never green: alignment is above 2 throughout


def test_step_ticks_of_a_one_step_run_are_whole_numbers_and_collapse_panels_do_not_touch(tmp_path, monkeypatch):
    plt = _plt()
    fig, ax = plt.subplots()
    ax.plot([1], [1e-3], marker="o")
    step_axis(ax)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks) and 1 in ticks
    plt.close(fig)
    import anycl.report.figures as figures

    drawn = []
    real = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or real(fig, path))
    long_run = [{"step": s, "spread": 0.5, "alignment": 1.0, "uniformity": -2.0} for s in range(1, 123_457, 1000)]
    collapse_figure(tmp_path / "c.png", long_run)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = drawn[-1]
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was saved and closed: a canvas of its own
    fig.draw(renderer)
    for a in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in a.get_xticklabels() if t.get_text()]
        assert all(b1.x1 < b2.x0 for b1, b2 in zip(boxes, boxes[1:])), [t.get_text() for t in a.get_xticklabels()]
    for left, right in zip(fig.axes, fig.axes[1:]):  # a panel's last tick label stays clear of the next panel
        last = [t for t in left.get_xticklabels() if t.get_text()][-1].get_window_extent(renderer)
        assert last.x1 < right.get_window_extent(renderer).x0


# -- nearest neighbours and the map, for each modality ----------------------------------------------------------
class _Trainer:
    """What write_report reads of a finished run."""

    def __init__(self, history, evals=(), steps=None):
        self.history, self.eval_history = list(history), list(evals)
        self.callbacks = [CollapseWatch()]
        self.global_step = steps or (history[-1]["step"] if history else 0)


def _images(root: Path, per_class=6):
    """Class folders of 20 px PNGs: a red, green or blue field with a square."""
    rng = np.random.default_rng(0)
    paths = []
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.full((20, 20, 3), 40, np.uint8)
            img[..., c] = 230
            y, x = rng.integers(0, 12, 2)
            img[y : y + 8, x : x + 8] = 255
            p = root / f"class{c}" / f"{i}.png"
            Image.fromarray(img).save(p)
            paths.append(str(p))
    return paths


def _clips(root: Path, per_class=4, sr=16000):
    """Clips of 3 s: a 220, 440 or 880 Hz tone (two classes by pitch, low and high)."""
    root.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    t = np.arange(3 * sr) / sr
    for f in (220, 440, 880):
        for i in range(per_class):
            p = root / f"tone{f}_{i}.wav"
            sf.write(p, (0.4 * np.sin(2 * np.pi * f * (1 + i / 50) * t)).astype(np.float32), sr)
            paths.append(str(p))
            labels.append("low" if f < 500 else "high")
    return paths, labels


def _report(tmp_path, model, examples, rows=None):
    examples.snapshot(model, "before")
    page = write_report(str(tmp_path / "run"), model, _Trainer(HEALTHY), rows, {"loss": "infonce"}, examples=examples)
    return page.read_text()


def _data_uris(page, mime):
    return [base64.b64decode(b) for b in re.findall(rf'src="data:{mime};base64,([^"]+)"', page)]


def test_image_neighbours_show_thumbnails_with_file_names_and_label_marks(tmp_path):
    paths = _images(tmp_path / "imgs")
    model = anycl.api.build_model(
        {"anchor": "image", "positive": "image"},
        encoder_options={"arch": "resnet10", "width": 8},
        adapter_options={"preset": "small", "size": 16},
    )
    model.eval()
    assert folder_labels(paths) == [f"class{i // 6}" for i in range(18)]
    examples = RetrievalExamples.from_items(paths, folder_labels(paths), modality="image", label_source="folder")
    rows = to_rows(str(tmp_path / "imgs"), None, (".png",))
    page = _report(tmp_path, model, examples, rows)
    assert page.index("id=health") < page.index("id=neighbours") < page.index("Training curves")
    thumbs = _data_uris(page, "image/png")
    thumbs = [t for t in thumbs if Image.open(io.BytesIO(t)).size != (800, 450)]  # not the figures
    assert len(thumbs) >= 3 * 2 * 3  # 3 queries x (the query + 3 hits before and after), some shared
    assert all(Image.open(io.BytesIO(t)).size == (60, 60) for t in thumbs)  # 20 px, each pixel shown 3 x 3
    for q in examples.queries:
        assert "/".join(Path(q).parts[-2:]) in page  # its class folder and file name
    marks = re.findall(r"(same|other) label \((class\d)\)", page)
    assert len(marks) == 3 * 2 * 3
    # each mark is right: the hit's folder against the query's
    data = json.loads((tmp_path / "run" / "report" / "data.json").read_text())
    for stage in ("before", "after"):
        for qi, hits in enumerate(data["examples"]["hits"][stage]):
            for h in hits:
                same = examples.corpus_labels[h["index"]] == examples.query_labels[qi]
                assert h["same_label"] is same and h["index"] != examples.own[qi]  # never the query itself
    # the map is coloured by the class folders (the rows' label column, anycl.data.inputs.class_folders)
    assert "coloured by label (3 labels)" in page
    assert page.count("<tr><td>") >= 18 and "class1/3.png</td><td>class1</td>" in page
    health_section = page[page.index("id=health") : page.index("</section>")]
    assert re.search(r"random pairs (of items )?score", health_section)  # the collapse verdict measured the map


def test_image_neighbours_search_with_anycl_search_topk(tmp_path, monkeypatch):
    """The hits are exact.topk's, with the query's own index excluded."""
    import anycl.report.examples as ex

    calls = []
    real = ex.topk
    monkeypatch.setattr(ex, "topk", lambda q, c, k, exclude=None: calls.append(exclude) or real(q, c, k, exclude))
    examples = RetrievalExamples.from_items([f"item {i}" for i in range(10)], [i % 2 for i in range(10)], n=2)

    class Model:
        sides = {"anchor": "text", "positive": "text"}

        def encode(self, items, modality=None):
            return torch.nn.functional.normalize(torch.tensor([[1.0, float(x.split()[1])] for x in items]), dim=1)

    examples.snapshot(Model(), "after")
    assert calls[0] == [[o] for o in examples.own]
    sims = Model().encode(examples.corpus) @ Model().encode(examples.queries).T
    for qi, hits in enumerate(examples.hits["after"]):
        order = [j for j in sims[:, qi].argsort(descending=True, stable=True).tolist() if j != examples.own[qi]][:3]
        assert [h["index"] for h in hits] == order


def test_audio_neighbours_are_playable_excerpts_with_file_names(tmp_path):
    paths, labels = _clips(tmp_path / "clips")
    model = anycl.api.build_model({"anchor": "audio", "positive": "audio"}, adapter_options={"clip_seconds": 0.5})
    model.eval()
    examples = RetrievalExamples.from_items(paths, labels, modality="audio")
    page = _report(tmp_path, model, examples)
    assert page.count("<audio controls") >= 3 * 2 * 3 // 2
    clips = _data_uris(page, "audio/wav")
    assert clips
    for data in clips:
        with wave.open(io.BytesIO(data)) as w:
            assert w.getnchannels() == 1 and w.getframerate() == 16000 and w.getsampwidth() == 2
            assert w.getnframes() == 2 * 16000  # the middle 2 s of a 3 s clip
    first = [q for q in examples.queries][0]
    assert f"clips/{Path(first).name}" in page
    assert re.search(r"(same|other) label \((low|high)\)", page)
    assert "coloured by label (2 labels)" in page  # the map, from the labelled examples (no training rows)
    # an excerpt is the clip's middle, as the adapter loads it
    with wave.open(io.BytesIO(clips[0])) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767
    wave_in = model.towers["audio"].adapter.load(examples.queries[0])
    mid = wave_in[16000 // 2 : 16000 // 2 + 32000].numpy()
    np.testing.assert_allclose(pcm, mid, atol=1.5 / 32767)


def test_text_neighbours_show_text_and_mark_the_own_document(tmp_path, minilm_path):
    anchors = [f"what do we know about {t}?" for t in ("cats", "rivers", "engines", "bread", "stars")]
    positives = [f"facts on {t}" for t in ("cats", "rivers", "engines", "bread", "stars")]
    model = anycl.api.build_model({"anchor": "text", "positive": "text"}, model=minilm_path)
    examples = RetrievalExamples.from_pairs(anchors, positives, labels=["a", "b", "a", "b", "a"])
    page = _report(tmp_path, model, examples)
    assert "<span class=text>facts on cats</span>" in page and "what do we know about" in page
    assert "✓ its own" in page and "<img class=thumb" not in page and "<audio" not in page
    assert re.search(r"same label \(a\)|same label \(b\)", page)


def test_cross_modal_neighbours_show_images_for_captions(tmp_path):
    paths = _images(tmp_path / "imgs", per_class=2)
    captions = [f"a picture of class {Path(p).parent.name}" for p in paths]  # repeated captions
    model = anycl.api.build_model(
        {"anchor": "image", "positive": "text"},
        encoder_options={"image": {"arch": "resnet10", "width": 8}},
        adapter_options={"image": {"preset": "small", "size": 16}, "text": {"max_seq_length": 16}},
        head=16,
    )
    model.eval()
    examples = RetrievalExamples.from_pairs(paths, captions)
    assert len(examples.corpus) == 3  # one document per distinct caption
    page = _report(tmp_path, model, examples)
    assert "<img class=thumb" in page and "<span class=text>a picture of class class0</span>" in page


# -- the page -------------------------------------------------------------------------------------------------------
def test_health_section_comes_first_and_is_red_for_a_bad_run(tmp_path):
    class Model:
        sides = {"anchor": "x", "positive": "x"}
        info = {"steps": 100}

        def encode(self, items, modality=None):
            return torch.nn.functional.normalize(torch.ones(len(items), 4) + 1e-3 * torch.arange(len(items))[:, None])

    rows = to_rows([{"anchor": f"item {i}", "label": i % 2} for i in range(20)])
    page = write_report(str(tmp_path), Model(), _Trainer(INVERTED), rows).read_text()
    assert page.index("<h2>Health</h2>") < page.index("<h2>Training curves</h2>")
    section = page[page.index("<h2>Health</h2>") : page.index("</section>")]
    assert "<li class=bad><b>✗ gap</b>: Inverted gap" in section
    assert "<li class=bad><b>✗ collapse</b>" in section  # every item embeds to nearly one point
    assert "<li class=bad><b>✗ loss</b>" in section and "Something is wrong" in section
    data = json.loads((tmp_path / "report" / "data.json").read_text())
    assert {v["rule"]: v["status"] for v in data["health"]}["gap"] == "bad"


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)")
def test_tiny_image_run_report_renders_thumbnails_and_health_in_headless_chromium(tmp_path):
    _images(tmp_path / "imgs")
    anycl.fit(
        str(tmp_path / "imgs"),
        modality="image",
        adapter_options={"preset": "small", "size": 16},
        encoder_options={"arch": "resnet10", "width": 8},
        batch_size=6,
        max_steps=3,
        progress=False,
        seed=0,
        output_dir=str(tmp_path / "run"),
    )
    page = tmp_path / "run" / "report.html"
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,1400",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout  # the DOM as Chromium parsed it
    assert "<h2>Health</h2>" in dom and 'class="warn"' in dom  # 3 steps: too few to judge
    assert dom.count('class="thumb"') >= 6
    assert not [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the health section's amber bar and the thumbnails' saturated red, green and blue fields are on screen
    amber = (abs(img[..., 0] - 208) < 12) & (abs(img[..., 1] - 138) < 12) & (img[..., 2] < 20)
    assert amber.sum() > 50
    for c in range(3):
        others = [o for o in range(3) if o != c]
        field = (img[..., c] > 215) & (img[..., others[0]] < 60) & (img[..., others[1]] < 60)
        assert field.sum() > 200, c

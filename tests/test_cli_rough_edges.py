"""What a new user hits first (issue 33): clear one-line errors for the usual slips, the files `embed` writes as
documented, log lines that do not break a progress bar, Python `fit`'s summary line, the cross-modal helpers at
`anycl.`. In-process (`anycl.cli.main`), small data."""

import copy
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import anycl
from anycl import cli
from anycl.adapters import get as get_adapter
from anycl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "cli.md").read_text()


def one_line_error(capsys, code, pattern):
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and re.search(pattern, err[0]), err
    return err[0]


def images(folder: Path, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


# -- options ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "modality, typo, meant",
    [("audio", "clip_second", "clip_seconds"), ("image", "sizee", "size"), ("text", "max_seq_len", "max_seq_length")],
)
def test_adapter_option_typos_get_a_did_you_mean(modality, typo, meant):
    with pytest.raises(ConfigError, match=rf"unknown {modality} adapter option '{typo}' \(did you mean '{meant}'\?\)"):
        get_adapter(modality, **{typo: 1})


def test_a_yaml_mapping_without_a_space_after_the_colon_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["fit", str(tmp_path), "--modality", "audio", "--adapter-options", "{sample_rate:44100}"])
    line = one_line_error(capsys, code, r"'sample_rate:44100' reads as one key without a value")
    assert "'{\"sample_rate\": 44100}'" in line  # the JSON to write instead


def test_model_resnet50_for_images_points_to_the_library_names_and_encoder_options(tmp_path, capsys):
    images(tmp_path / "imgs")
    code = cli.main(["fit", str(tmp_path / "imgs"), "--modality", "image", "--model", "resnet50", "-q"])
    line = one_line_error(capsys, code, r"model='resnet50' names no image backbone: write 'torchvision/resnet50'")
    assert '--encoder-options \'{"arch": "resnet50"}\'' in line


def test_an_image_model_name_missing_offline_is_said_not_dropped(tmp_path):
    # (image towers take a backbone by name: torchvision/..., timm/... or a Hugging Face id; tests are offline)
    with pytest.raises(ConfigError, match="cannot open the image model 'some/model'"):
        anycl.api.build_model({"anchor": "image", "positive": "image"}, model="some/model")


# -- embed -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_towers(tmp_path_factory, minilm_path):
    """A saved image-text model (untrained: only its shape matters here)."""
    folder = tmp_path_factory.mktemp("crossmodal") / "model"
    model = anycl.api.build_model(
        {"anchor": "image", "positive": "text"},
        model=minilm_path,
        encoder_options={"image": {"arch": "resnet10", "width": 8}},
        adapter_options={"image": {"preset": "small", "size": 16}},
        head=16,
    )
    model.save(str(folder))
    return folder


def test_embed_on_a_two_tower_model_asks_which_tower(two_towers, tmp_path, capsys):
    pd.DataFrame({"anchor": ["a photo of a cat", "a photo of a dog"]}).to_csv(tmp_path / "q.csv", index=False)
    code = cli.main(["embed", str(two_towers), str(tmp_path / "q.csv"), "-o", str(tmp_path / "e.parquet")])
    one_line_error(capsys, code, r"this model has 2 towers \(image, text\): pass --modality image or --modality text")
    args = ["embed", str(two_towers), str(tmp_path / "q.csv"), "-o", str(tmp_path / "e.parquet"), "-q"]
    assert cli.main(args + ["--modality", "text"]) == 0
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == ["id", "embedding", "item"] and frame["item"].tolist()[0] == "a photo of a cat"


def test_embed_files_are_where_the_docs_say(two_towers, tmp_path, capsys):
    folder = images(tmp_path / "imgs")
    base = ["embed", str(two_towers), str(folder), "--modality", "image", "-q"]
    assert cli.main(base + ["-o", str(tmp_path / "emb.npy")]) == 0
    assert "(+ ids in" in capsys.readouterr().out
    ids = json.loads((tmp_path / "emb.ids.json").read_text())  # -o emb.npy: the ids in emb.ids.json
    assert ids == [f"{i}.png" for i in range(4)] and np.load(tmp_path / "emb.npy").shape == (4, 16)
    assert "`-o emb.npy` writes `emb.ids.json`" in DOCS
    # Parquet: the item column holds the file paths of images, as docs/cli.md says
    assert cli.main(base + ["-o", str(tmp_path / "emb.parquet")]) == 0
    frame = pd.read_parquet(tmp_path / "emb.parquet")
    assert frame["item"].tolist() == [str(folder / f"{i}.png") for i in range(4)]
    assert "`item` (the text, or the file path of an audio or image item)" in DOCS


# -- output ------------------------------------------------------------------------------------------------------
def test_a_log_line_during_a_progress_bar_gets_its_own_line(capsys):
    """The audio adapter's mono mix-down note said while `encode`'s bar runs (issue 33)."""
    from tqdm import tqdm

    from anycl.cli.common import setup_logging

    log = logging.getLogger("anycl")
    old = (log.handlers[:], log.level, log.propagate)
    try:
        setup_logging(False, False)
        bar = tqdm(total=4, desc="encode", file=sys.stderr)
        bar.update(1)
        log.info("audio: multichannel clips are mixed down to mono")
        bar.update(1)
        bar.close()
    finally:
        log.handlers[:], log.level, log.propagate = old
    err = capsys.readouterr().err
    assert "audio: multichannel clips are mixed down to mono" in re.split(r"[\r\n]", err)  # a line of its own


def test_a_multichannel_clip_during_encode_does_not_break_the_bar(tmp_path, capsys):
    t = np.arange(16000) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "a.wav", stereo, 16000)
    model = anycl.api.build_model({"anchor": "audio", "positive": "audio"})
    model.save(str(tmp_path / "m"))
    assert cli.main(["embed", str(tmp_path / "m"), str(tmp_path), "-o", str(tmp_path / "e.npy")]) == 0
    err = capsys.readouterr().err
    assert any(ln.startswith("audio: multichannel clips are mixed down") for ln in re.split(r"[\r\n]", err))


def test_python_fit_prints_a_summary_line_with_the_report_path(tmp_path, tiny_text_encoder, capsys):
    pairs = [{"anchor": f"query {i}", "positive": f"document {i}"} for i in range(8)]
    opts = dict(modality="text", batch_size=4, encoder=copy.deepcopy(tiny_text_encoder), seed=0)
    anycl.fit(pairs, output_dir=str(tmp_path / "run"), adapter_options={"max_seq_length": 8}, **opts)
    out = capsys.readouterr().out
    assert re.search(
        r"anycl\.fit: trained 2 steps on 8 rows in \d+ s; model: \S+/run/model; report: \S+/report.html", out
    )
    assert Path(out.split("report: ")[1].strip()).is_file()
    anycl.fit(pairs, output_dir=str(tmp_path / "quiet"), progress=False, **opts)  # progress=False: not printed
    assert "anycl.fit" not in capsys.readouterr().out


def test_the_cross_modal_helpers_are_reachable_from_anycl_and_documented():
    from anycl.evaluation import crossmodal

    assert anycl.ZeroShotClassifier is crossmodal.ZeroShotClassifier
    assert anycl.cross_modal_retrieval is crossmodal.cross_modal_retrieval
    text = (ROOT / "docs" / "crossmodal.md").read_text()
    assert "anycl.ZeroShotClassifier" in text and "anycl.cross_modal_retrieval" in text
    assert "anycl.evaluation.crossmodal" in text

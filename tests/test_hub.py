"""Publishing (anycl.export.hub) and what cards say (anycl.export.card_sources), offline: the Hub calls are
recorded by a stand-in for ``huggingface_hub.HfApi`` that copies the uploaded folder, and the copy is loaded back
with anycl and sentence-transformers."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import yaml

import anycl
from anycl.adapters.text import DEFAULT_MODEL_ID
from anycl.errors import ConfigError
from anycl.export.card import front_matter, model_card
from anycl.export.card_sources import hub_id_of_folder, language_of, public_path, public_text
from anycl.model.contrastive import build_model

SENTENCES = ["a cat sleeps on the mat", "rivers flow to the sea", "the engine needs oil"]


class FakeApi:
    """Records create_repo / upload_folder and keeps a copy of each uploaded folder (no network)."""

    calls: list = []
    uploads: dict = {}

    def __init__(self, token=None):
        FakeApi.calls.append(("HfApi", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", {k: v for k, v in kwargs.items() if k != "folder_path"}))
        copy = Path(self.root) / kwargs["repo_id"].replace("/", "--")
        shutil.copytree(kwargs["folder_path"], copy)
        FakeApi.uploads[kwargs["repo_id"]] = copy
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    FakeApi.calls, FakeApi.uploads, FakeApi.root = [], {}, str(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


@pytest.fixture(scope="module")
def _fitted(tmp_path_factory):
    """A text model fitted one step on data under an absolute path, as a user's run records it."""
    tmp_path = tmp_path_factory.mktemp("fitted")
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess"]
    text_pairs = [
        {"anchor": f"what about {t}? ({i})", "positive": f"facts on {t}, {i}"} for i in range(3) for t in topics
    ]
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    import json

    data.write_text("".join(json.dumps(row) + "\n" for row in text_pairs))
    model = anycl.fit(
        str(data),
        modality="text",
        batch_size=8,
        max_steps=1,
        progress=False,
        log_with=None,
        adapter_options={"max_seq_length": 32},
        collapse_watch=False,
    )
    model.info["command"] = f"anycl fit {data} --output-dir {tmp_path / 'run'} --max-steps 1"
    return model, tmp_path


@pytest.fixture
def trained(_fitted):
    """A fresh copy of the fitted model (tests change its info)."""
    return copy.deepcopy(_fitted[0])


@pytest.fixture
def fit_root(_fitted):
    """The folder that holds the fitted run's data and output (absolute, as a user's)."""
    return _fitted[1]


def _files(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _front(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_push_to_hub_uploads_the_saved_folder_with_cards_for_the_repository(trained, fake_hub, fit_root, tmp_path):
    url = trained.push_to_hub("ada/cats", private=True, token="hf_x", license="mit", language="en")
    assert url == "https://huggingface.co/ada/cats/commit/abc"
    assert fake_hub.calls == [
        ("HfApi", {"token": "hf_x"}),
        ("create_repo", {"repo_id": "ada/cats", "private": True, "exist_ok": True, "repo_type": "model"}),
        (
            "upload_folder",
            {
                "repo_id": "ada/cats",
                "repo_type": "model",
                "commit_message": "Upload anycl model with anycl",
                "revision": None,
                "create_pr": False,
            },
        ),
    ]
    up = fake_hub.uploads["ada/cats"]
    trained.save(str(tmp_path / "local"))
    assert _files(up) == _files(tmp_path / "local")  # the files model.save writes, no more, no fewer
    card = (up / "README.md").read_text()
    assert 'anycl.load("ada/cats")' in card and 'SentenceTransformer("ada/cats/towers/text")' in card
    front = _front(card)
    assert front["license"] == "mit" and front["language"] == "en" and front["base_model"] == DEFAULT_MODEL_ID
    for f in ("README.md", "config.yaml", "towers/text/README.md"):  # no local directory named anywhere
        assert str(tmp_path) not in (up / f).read_text() and str(fit_root) not in (up / f).read_text(), f
    assert "dataset: data/train.jsonl" in (up / "config.yaml").read_text()
    # the local save keeps config.yaml's paths (it reruns the run) but its card names none
    assert str(fit_root / "data" / "train.jsonl") in (tmp_path / "local" / "config.yaml").read_text()
    assert str(fit_root) not in (tmp_path / "local" / "README.md").read_text()
    assert _front((tmp_path / "local" / "README.md").read_text())["license"] == "mit"  # kept in model.info["card"]
    back = anycl.load(str(up))
    np.testing.assert_allclose(back.encode(SENTENCES), trained.encode(SENTENCES), atol=1e-6)


def test_push_to_hub_in_the_sentence_transformers_format_loads_in_sentence_transformers(trained, fake_hub):
    from sentence_transformers import SentenceTransformer

    trained.push_to_hub("ada/cats-st", format="sentence-transformers", exist_ok=False, commit_message="v1")
    create, upload = fake_hub.calls[1][1], fake_hub.calls[2][1]
    assert create["exist_ok"] is False and create["private"] is None and upload["commit_message"] == "v1"
    up = fake_hub.uploads["ada/cats-st"]
    assert {"modules.json", "config_sentence_transformers.json", "README.md"} <= _files(up)
    card = (up / "README.md").read_text()
    assert 'SentenceTransformer("ada/cats-st")' in card and _front(card)["library_name"] == "sentence-transformers"
    st = SentenceTransformer(str(up), device="cpu")
    np.testing.assert_allclose(st.encode(SENTENCES), trained.encode(SENTENCES), atol=1e-5)


def test_load_by_hub_id_downloads_or_reads_the_cache_and_says_when_it_cannot(trained, tmp_path, monkeypatch):
    trained.save(str(tmp_path / "snapshot"))
    asked = []

    def snapshot_download(repo_id, revision=None, repo_type=None):
        asked.append((repo_id, repo_type))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    back = anycl.load("ada/cats")
    assert asked == [("ada/cats", "model")]
    np.testing.assert_allclose(back.encode(SENTENCES), trained.encode(SENTENCES), atol=1e-6)

    def missing(repo_id, revision=None, repo_type=None):
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache and outgoing traffic is disabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"'ada/nothere' is not a local folder.*HF_HUB_OFFLINE is set"):
        anycl.load("ada/nothere")
    with pytest.raises(FileNotFoundError, match="is not a folder"):  # an absolute path is never a Hub id
        anycl.load(str(tmp_path / "nothere"))


def test_bad_push_arguments_are_refused_before_anything_is_uploaded(trained, fake_hub, tmp_path):
    for bad in ("cats", "a/b/c", str(tmp_path)):
        with pytest.raises(ConfigError, match="is not a Hub repository id"):
            trained.push_to_hub(bad)
    with pytest.raises(ConfigError, match=r"format='safetensors' is not one anycl writes; choose 'anycl' or one"):
        trained.push_to_hub("ada/cats", format="safetensors")
    with pytest.raises(ConfigError, match="license= takes a non-empty string"):
        trained.push_to_hub("ada/cats", license=3)
    with pytest.raises(ConfigError, match="language= takes a non-empty string"):
        trained.save(str(tmp_path / "m"), language=[""])
    assert fake_hub.calls == [] and not (tmp_path / "m").exists()


def test_base_model_and_language_come_from_a_local_folder_that_names_itself(minilm_path, tmp_path):
    copy = tmp_path / "my-copy"
    shutil.copytree(minilm_path, copy)
    assert hub_id_of_folder(str(copy)) == DEFAULT_MODEL_ID  # its README's title and loading snippet
    assert language_of(str(copy)) == "en"
    cache = tmp_path / "hf" / "models--acme--tiny-bert" / "snapshots" / "0123abcd"
    cache.mkdir(parents=True)
    assert hub_id_of_folder(str(cache)) == "acme/tiny-bert"  # the Hugging Face cache's own layout
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "README.md").write_text("# bare\n\nBased on `SentenceTransformer('org/other-model')`.\n")
    assert hub_id_of_folder(str(bare)) is None  # it names another model, not itself

    model = build_model({"anchor": "text", "positive": "text"}, model=str(copy))
    fm = front_matter(model)
    assert fm["base_model"] == DEFAULT_MODEL_ID and fm["language"] == "en" and "license" not in fm
    assert str(tmp_path) not in model_card(model, str(tmp_path / "out" / "model"))


def test_cards_show_no_absolute_path_and_a_real_dataset_entry(trained, fit_root, tmp_path):
    trained.info["config"] = dict(trained.info["config"], eval_dataset=str(tmp_path / "dev set.csv"))
    trained.info["final_metrics"] = {"step": 1, "ndcg@10": 0.5}
    card = model_card(trained, str(tmp_path / "run" / "model"))
    assert str(tmp_path) not in card and str(fit_root) not in card and 'anycl.load("run/model")' in card
    assert f"anycl fit data/train.jsonl --output-dir {fit_root.name}/run --max-steps 1" in card
    entry = _front(card)["model-index"][0]["results"][0]["dataset"]
    assert entry == {"name": "dev set.csv", "type": "dev-set"}
    trained.info["config"]["eval_dataset"] = "mteb/stsbenchmark-sts"
    assert front_matter(trained)["model-index"][0]["results"][0]["dataset"] == {
        "name": "mteb/stsbenchmark-sts",
        "type": "mteb/stsbenchmark-sts",
    }


@pytest.mark.parametrize(
    "given, shown",
    [
        ("/home/ada/runs/out/model", "out/model"),
        ("~/data/train.csv", "data/train.csv"),
        ("out/model", "out/model"),
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("/", "."),
        (3, 3),
    ],
)
def test_public_path(given, shown):
    assert public_path(given) == shown


def test_public_text_keeps_urls_and_relative_paths():
    text = "anycl fit /srv/d/train.csv --eval data/dev.csv --model https://hf.co/a/b --output-dir ~/x/y/z"
    assert public_text(text) == "anycl fit d/train.csv --eval data/dev.csv --model https://hf.co/a/b --output-dir y/z"


def test_the_push_command(trained, fake_hub, tmp_path, capsys):
    from anycl.cli import main

    trained.save(str(tmp_path / "m"))
    code = main(["push", str(tmp_path / "m"), "ada/cats", "--private", "--license", "mit", "--language", "en,de"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == f"pushed {tmp_path / 'm'} to ada/cats as anycl: https://huggingface.co/ada/cats/commit/abc"
    assert fake_hub.calls[1] == (
        "create_repo",
        {"repo_id": "ada/cats", "private": True, "exist_ok": True, "repo_type": "model"},
    )
    front = _front((fake_hub.uploads["ada/cats"] / "README.md").read_text())
    assert front["license"] == "mit" and front["language"] == ["en", "de"]
    assert main(["push", str(tmp_path / "nothere"), "ada/cats"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "m"), "cats"]) == 2
    assert "is not a Hub repository id" in capsys.readouterr().err

"""A small crafted model folder never runs code, never allocates gigabytes, never blocks (issue 32).

Each case changes one thing in a saved model folder and loads it in a child process whose address space is capped
(tests/folder_probe.py): the load must end with anycl's own error naming the file, with the process's peak
memory grown by less than 200 MB. Then: code named by a text tower's modules.json, a Dense activation or a shard
index is refused before sentence-transformers sees the folder (whatever its version); the config's structure
and tower names are checked; a load during saves by another process sees a whole model, old or new.
"""

import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from folder_probe import GROWTH_LIMIT_MB, probe, small_model
from unix_socket import bind_unix_socket

import anycl
from anycl import cli
from anycl.errors import AnyclError, ConfigError
from anycl.statefile import StateFileError, load_state, save_state

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m"
    small_model().save(path)
    return path


def _copy(saved, tmp_path, name="m"):
    dst = tmp_path / name
    shutil.copytree(saved, dst)
    return dst


def _replaced(saved, tmp_path, name, rel, make):
    """A copy of the model named ``name`` whose file ``rel`` is replaced by what ``make(path)`` puts there."""
    folder = _copy(saved, tmp_path, name)
    (folder / rel).unlink()
    make(folder / rel)
    return folder


def _edit_config(folder, change):
    cfg_file = folder / "anycl_config.json"
    config = json.loads(cfg_file.read_text())
    change(config)
    cfg_file.write_text(json.dumps(config))
    return folder


def _load_each(warmup, *folders):
    """{folder name: outcome} of anycl.load on each folder, in one capped child process (after loading ``warmup``)."""
    return probe([{"label": p.name, "kind": "load", "path": str(p)} for p in folders], warmup=str(warmup))


def _assert_refused(outcome, pattern):
    """anycl's own error matching ``pattern``, before memory grew by GROWTH_LIMIT_MB."""
    assert not outcome["ok"], outcome
    assert outcome.get("anycl_error"), outcome
    assert pattern in outcome["error"], outcome
    assert outcome["growth_mb"] < GROWTH_LIMIT_MB, outcome


# -- S1: a safetensors header length of 2e9 in a sparse file -------------------------------------------------------
def test_a_huge_declared_safetensors_header_is_refused_before_it_is_read(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "towers" / "image" / "encoder.safetensors"
    with open(weights, "wb") as f:  # 4 KB on disk, 2.4 GB long; the header "claims" 2e9 bytes
        f.write(struct.pack("<Q", 2_000_000_000) + b"{" + b" " * 4000)
        f.truncate(2_400_000_000)
    assert weights.stat().st_blocks * 512 < 1_000_000  # sparse: the file system holds next to nothing
    outcome = _load_each(saved, folder)["m"]
    _assert_refused(outcome, "its header claims 2,000,000,000 bytes, more than the 100,000,000")
    assert "encoder.safetensors" in outcome["error"]


# -- S2, S3: widths in the config that the weights do not hold -----------------------------------------------------
def test_config_widths_are_checked_against_the_weights_before_anything_is_built(saved, tmp_path):
    def head_out(c):
        c["towers"]["image"]["head"]["out_dim"] = 400_000_000

    def head_hidden(c):
        c["towers"]["audio"]["head"]["hidden_dim"] = 400_000_000

    def audio_width(c):
        c["towers"]["audio"]["encoder"]["options"]["embedding_dim"] = 400_000_000

    def image_width(c):
        c["towers"]["image"]["encoder"]["options"]["width"] = 100_000

    cases = {"head_out": head_out, "head_hidden": head_hidden, "audio_width": audio_width, "image_width": image_width}
    outcomes = _load_each(saved, *(_edit_config(_copy(saved, tmp_path, k), f) for k, f in cases.items()))
    for label in cases:
        _assert_refused(outcomes[label], "in the file but")
        assert "in the configuration; the folder was altered" in outcomes[label]["error"]
    assert "heads.safetensors does not fit the image tower's head" in outcomes["head_out"]["error"]
    assert "audio/encoder.safetensors does not fit the audio encoder's options" in outcomes["audio_width"]["error"]


def test_numbers_that_would_only_build_modules_are_bounded(saved, tmp_path):
    layers = _edit_config(_copy(saved, tmp_path, "layers"), lambda c: c["towers"]["image"]["head"].update(layers=10**9))
    blocks = _edit_config(
        _copy(saved, tmp_path, "blocks"),
        lambda c: c["towers"]["audio"]["encoder"]["options"].update(channels=[4] * 10**5),
    )
    typo = _edit_config(
        _copy(saved, tmp_path, "typo"), lambda c: c["towers"]["image"]["encoder"]["options"].update(w=1)
    )
    outcomes = _load_each(saved, layers, blocks, typo)
    _assert_refused(outcomes["layers"], "towers.image.head: layers must be an integer >= 1 and at most 16")
    _assert_refused(outcomes["blocks"], "channels must be a list of 1 to 16 widths")
    _assert_refused(outcomes["typo"], "image encoder's options in anycl_config.json cannot be built: TypeError")


# -- S4, B5: special files and links out of the folder ---------------------------------------------------------------
def test_config_linked_to_dev_zero_or_a_fifo_is_refused_without_reading_or_blocking(saved, tmp_path):
    zero = _replaced(saved, tmp_path, "zero", "anycl_config.json", lambda p: p.symlink_to("/dev/zero"))
    fifo = _replaced(saved, tmp_path, "fifo", "anycl_config.json", os.mkfifo)
    weights_fifo = _replaced(saved, tmp_path, "weights_fifo", "heads.safetensors", os.mkfifo)
    outcomes = _load_each(saved, zero, fifo, weights_fifo)  # on a hang the child is ended: "not run"
    _assert_refused(outcomes["zero"], "anycl_config.json is a symbolic link to /dev/zero, outside the folder")
    _assert_refused(outcomes["fifo"], "anycl_config.json is a FIFO (named pipe), not a regular file")
    _assert_refused(outcomes["weights_fifo"], "heads.safetensors is a FIFO (named pipe), not a regular file")


def test_links_inside_the_folder_load_and_links_out_of_it_are_refused(saved, tmp_path):
    inner = _copy(saved, tmp_path, "inner")
    (inner / "kept").mkdir()
    os.replace(inner / "heads.safetensors", inner / "kept" / "heads.safetensors")
    (inner / "heads.safetensors").symlink_to(Path("kept") / "heads.safetensors")
    assert anycl.load(inner) is not None

    outer = _copy(saved, tmp_path, "outer")
    shutil.copy(outer / "heads.safetensors", tmp_path / "elsewhere.safetensors")
    (outer / "heads.safetensors").unlink()
    (outer / "heads.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(ConfigError, match=r"heads.safetensors is a symbolic link to .*elsewhere.safetensors, outside"):
        anycl.load(outer)

    sock_dir = _copy(saved, tmp_path, "sock")
    s = bind_unix_socket(sock_dir / "towers" / "s")
    try:
        with pytest.raises(ConfigError, match=r"towers/s is a socket, not a regular file"):
            anycl.load(sock_dir)
    finally:
        s.close()


# -- weak cases: the config's structure, tower names, nesting ------------------------------------------------------
@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.update(towers="oops"), r"anycl_config.json: 'towers' must be an object \{name: tower\}, got str"),
        (lambda c: c["towers"]["image"].update(modality=3), r"anycl_config.json: towers.image.modality must be a"),
        (lambda c: c["towers"]["image"].update(head=[1]), r"anycl_config.json: towers.image.head must be an object"),
        (lambda c: c.update(sides={"anchor": "video"}), r"anycl_config.json: sides.anchor must be one of"),
        (lambda c: c.update(info=[]), r"anycl_config.json: 'info' must be an object or null, got list"),
        (lambda c: c.update(format_version="1"), r"anycl_config.json: format_version must be a number"),
    ],
)
def test_a_config_of_the_wrong_shape_names_the_file_and_the_key(saved, tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        anycl.load(_edit_config(_copy(saved, tmp_path), change))


def test_a_tower_named_by_a_path_is_refused_and_nothing_outside_is_read(saved, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(saved / "towers" / "image", outside)
    for name in (str(outside), "../outside", "a/b"):

        def rename(c, name=name):
            c["towers"][name] = c["towers"].pop("image")
            c["sides"]["anchor"] = name
            c["towers"][name]["head"] = None

        with pytest.raises(ConfigError, match=r"tower name .* is not a plain name"):
            anycl.load(_edit_config(_copy(saved, tmp_path, "m" + str(len(name))), rename))


def test_deeply_nested_json_is_an_error_naming_the_file(saved, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    folder = _copy(saved, tmp_path)
    (folder / "anycl_config.json").write_text(deep)
    with pytest.raises(
        ConfigError, match=r"anycl_config.json is not a file anycl wrote: its JSON is nested too deeply"
    ):
        anycl.load(folder)
    state = tmp_path / "state"
    state.mkdir()
    save_state({"a": 1}, state, "trainer")
    (state / "trainer.json").write_text(
        json.dumps({"format": "anycl-state", "tensors": 0, "state": 1})[:-2] + deep + "}"
    )
    with pytest.raises(StateFileError, match=r"trainer.json is not a file anycl wrote: its JSON is nested too deeply"):
        load_state(state, "trainer")


def test_state_file_types_cannot_ask_for_object_or_subarray_dtypes(tmp_path):
    import numpy as np

    save_state({"x": np.arange(3, dtype=np.int32)}, tmp_path, "s")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert load_state(tmp_path, "s")["x"].tolist() == [0, 1, 2]
    for dtype in ("(1000,1000)f8", "O", "V1000"):  # 3 items of 8 MB each, objects, raw bytes
        doc["state"]["d"][0][1]["dtype"] = dtype
        (tmp_path / "s.json").write_text(json.dumps(doc))
        with pytest.raises(StateFileError, match=r"unexpected NumPy dtype"):
            load_state(tmp_path, "s")


def test_a_lora_rank_the_saved_matrices_do_not_have_is_refused_before_peft_builds_them(tmp_path):
    import toy_modality  # noqa: F401  (registers the toy modality)

    from anycl.api import build_model
    from anycl.model.lora import apply_lora

    model = build_model({"anchor": "toyvec", "positive": "toyvec"}, head=None)
    apply_lora(model, {"r": 2, "target_modules": ["net.0", "net.3"], "merge": False})
    model.save(tmp_path / "m")
    assert anycl.load(tmp_path / "m").towers["toyvec"].lora is not None  # intact: loads with its adapter
    cfg_file = tmp_path / "m" / "towers" / "toyvec" / "lora" / "adapter_config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "r": 400_000_000}))
    outcome = probe([{"label": "r", "kind": "load", "path": str(tmp_path / "m")}])["r"]
    _assert_refused(outcome, "gives LoRA rank r=400000000 but adapter_model.safetensors holds matrices of rank [2]")


# -- S6 and the text tower's JSON: no code named by the folder -----------------------------------------------------
PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("code ran")
from sentence_transformers.models import Pooling as Evil
"""


@pytest.fixture(scope="module")
def text_saved(tmp_path_factory, minilm_path):
    from anycl.api import build_model

    path = tmp_path_factory.mktemp("text") / "t"
    build_model({"anchor": "text", "positive": "text"}, model=minilm_path).save(path)
    return path


def _text_copy(text_saved, tmp_path, name="t"):
    """A copy of the text model whose large files are hard links (JSON files are rewritten, never edited in place)."""
    dst = tmp_path / name
    shutil.copytree(text_saved, dst, copy_function=os.link)
    return dst


def _rewrite(path, data):
    path.unlink()  # a hard link: a new file, the shared one untouched
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def _with_dense(folder, config):
    """``folder`` with a sentence-transformers Dense module of ``config`` (no weights) after its pooling."""
    tower = folder / "towers" / "text"
    (tower / "2_Dense").mkdir()
    (tower / "2_Dense" / "config.json").write_text(json.dumps(config))
    modules = json.loads((tower / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    _rewrite(tower / "modules.json", modules)
    return folder


def _plant_module(folder, marker):
    tower = folder / "towers" / "text"
    (tower / "evil_module.py").write_text(PLANTED.format(marker=str(marker)))
    modules = json.loads((tower / "modules.json").read_text())
    modules[1]["type"] = "evil_module.Evil"
    _rewrite(tower / "modules.json", modules)
    return tower


def test_a_module_named_by_modules_json_is_never_imported_whatever_the_sentence_transformers_version(
    text_saved, tmp_path, monkeypatch
):
    marker = tmp_path / "code-ran"
    folder = _text_copy(text_saved, tmp_path)
    tower = _plant_module(folder, marker)

    # sentence-transformers 5.x: a local folder's own module files are imported without trust_remote_code
    import sentence_transformers.base.model as st_model

    def trusting_import(class_ref, model_name_or_path=None, **_):
        sys.path.insert(0, model_name_or_path)
        try:
            module, _, name = class_ref.rpartition(".")
            return getattr(importlib.import_module(module), name)
        finally:
            sys.path.remove(model_name_or_path)

    monkeypatch.setattr(st_model, "import_module_class", trusting_import)
    with pytest.raises(ConfigError, match=r"modules.json: module 1 has type 'evil_module.Evil', which is not a sente"):
        anycl.load(folder)
    assert not marker.exists()

    modules = json.loads((tower / "modules.json").read_text())
    modules[1]["type"] = "sentence_transformers.models.Pooling"
    modules[1]["path"] = "../../../elsewhere"
    _rewrite(tower / "modules.json", modules)
    with pytest.raises(ConfigError, match=r"module 1 has path '../../../elsewhere', which is not a folder inside"):
        anycl.load(folder)


def test_a_sentence_transformers_folder_named_as_teacher_or_base_model_is_checked_for_code_too(text_saved, tmp_path):
    from anycl.adapters import get as get_adapter
    from anycl.model.teacher import open_teacher

    marker = tmp_path / "code-ran"
    tower = _plant_module(_text_copy(text_saved, tmp_path), marker)
    with pytest.raises(
        ConfigError, match=r"module 1 has type 'evil_module.Evil', which is not a sentence-transformers"
    ):
        open_teacher(str(tower))
    with pytest.raises(ConfigError, match=r"module 1 has type 'evil_module.Evil'"):
        get_adapter("text").default_encoder(model=str(tower))
    assert not marker.exists()


def test_the_cli_refuses_a_planted_module_with_exit_2_and_one_line(text_saved, tmp_path, capsys):
    folder = _text_copy(text_saved, tmp_path)
    _plant_module(folder, tmp_path / "code-ran")
    data = tmp_path / "items.csv"
    data.write_text("anchor\nhello\n")
    code = cli.main(["embed", str(folder), str(data), "--output", str(tmp_path / "e.parquet"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is not a sentence-transformers module class" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "code-ran").exists()


def test_a_dense_activation_or_a_pickle_shard_named_by_the_folder_is_refused(text_saved, tmp_path):
    folder = _with_dense(
        _text_copy(text_saved, tmp_path, "dense"),
        {"in_features": 384, "out_features": 8, "bias": True, "activation_function": "os.system"},
    )
    with pytest.raises(ConfigError, match=r"2_Dense/config.json: activation_function 'os.system' is not a torch.nn"):
        anycl.load(folder)

    marker = tmp_path / "code-ran"
    shard = _text_copy(text_saved, tmp_path, "shard")
    tower = shard / "towers" / "text"
    torch.save({"x": _Planted(str(marker))}, tower / "weights.dat")  # a pickle under another name
    (tower / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {"x": "weights.dat"}}))
    with pytest.raises(ConfigError, match=r"pytorch_model.bin.index.json names the shard 'weights.dat'; anycl loads"):
        anycl.load(shard)
    assert not marker.exists()


class _Planted:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "code ran"))


def test_a_text_config_describing_more_than_its_weights_is_refused_before_it_is_built(text_saved, tmp_path):
    vocab = _text_copy(text_saved, tmp_path, "vocab")
    cfg = json.loads((vocab / "towers" / "text" / "config.json").read_text())
    _rewrite(vocab / "towers" / "text" / "config.json", {**cfg, "vocab_size": 400_000_000})
    dense = _with_dense(_text_copy(text_saved, tmp_path, "dense"), {"in_features": 384, "out_features": 400_000_000})
    outcomes = _load_each(text_saved, vocab, dense)
    _assert_refused(
        outcomes["vocab"],
        "text/config.json describes 153,610,992,768 parameters but the weights beside it hold 22,713,216",
    )
    _assert_refused(outcomes["dense"], "2_Dense/config.json describes 153,600,000,000 parameters but the weights")


# -- B4: loads while another process saves the same folder ---------------------------------------------------------
SAVER = """
import sys, time
sys.path.insert(0, {here!r})
import torch
import anycl
from toy_modality import ToyEncoder  # registers the toy modality
from anycl.api import build_model

models = []
for value in (1.0, 2.0):
    m = build_model({{"anchor": "toyvec", "positive": "toyvec"}}, head=8)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)
    m.info = {{"value": value}}
    models.append(m)
if {rename_aside}:  # a file system that cannot swap two folders in one step
    import anycl.files

    anycl.files.exchange = lambda a, b: False
models[0].save(sys.argv[1])
print("ready", flush=True)
for i in range({saves}):
    models[i % 2].save(sys.argv[1], overwrite=True)
    time.sleep({pause})  # saves now and then, as a run's checkpoints are: loads can end between them
open(sys.argv[2], "w").close()  # done: the loads after this one are not loads during saves
"""


@pytest.mark.parametrize("rename_aside", [False, True], ids=["swap", "rename-aside"])
def test_loads_during_saves_by_another_process_see_one_whole_model(tmp_path, rename_aside):
    import toy_modality  # noqa: F401  (the toy modality, registered for the loads here)

    folder = tmp_path / "m"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    done = tmp_path / "saves-done"
    saver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SAVER.format(here=HERE, saves=60, pause=0.05, rename_aside=rename_aside),
            str(folder),
            str(done),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert saver.stdout.readline().strip() == "ready", saver.stderr.read()
        seen, errors = [], []
        while not done.exists() and saver.poll() is None and len(seen) + len(errors) < 3000:
            try:
                model = anycl.load(folder)
            except Exception as exc:  # noqa: BLE001 - counted, then asserted to be none
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            values = {float(v) for p in model.parameters() for v in p.detach().unique()}
            seen.append((model.info["value"], tuple(sorted(values))))
        saver.wait(timeout=300)
    finally:
        if saver.poll() is None:
            saver.kill()
            saver.wait()
    assert saver.returncode == 0, saver.stderr.read()[-3000:]
    assert not errors, (len(errors), errors[:3])
    mixed = [s for s in seen if s[1] != (s[0],)]
    assert not mixed, (len(mixed), len(seen), mixed[:3])
    assert {v for v, _ in seen} == {1.0, 2.0} and len(seen) >= 20, len(seen)


SWAPPER = """
import sys
from pathlib import Path
from anycl.files import replace_folder

root, target = Path(sys.argv[1]), Path(sys.argv[1]) / "t"
print("ready", flush=True)
for i in range(2000):
    new = root / f"new-{i}"
    new.mkdir()
    (new / "v").write_text(str(i))
    replace_folder(new, target)
"""


def test_the_swap_leaves_no_moment_without_the_folder(tmp_path):
    from anycl.files import exchange

    target, probe_dir = tmp_path / "t", tmp_path / "probe"
    target.mkdir()
    probe_dir.mkdir()
    if not exchange(probe_dir, target):  # a system that cannot swap in one step renames aside
        pytest.skip("this file system cannot exchange two folders in one step")
    probe_dir.rmdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert swapper.stdout.readline().strip() == "ready"
    looks = missing = 0
    while swapper.poll() is None:  # the other process replaces the folder 2000 times; this one looks
        looks += 1
        missing += not target.is_dir()
    assert swapper.wait(timeout=300) == 0
    assert missing == 0 and looks > 1000, (missing, looks)
    assert (target / "v").read_text() == "1999"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_a_load_that_keeps_failing_while_nothing_changes_is_not_retried(saved, tmp_path, monkeypatch):
    from anycl.model import folder as folder_module

    calls = []
    real = folder_module._read_once

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(folder_module, "_read_once", counting)
    broken = _edit_config(_copy(saved, tmp_path), lambda c: c.update(towers="oops"))
    with pytest.raises(AnyclError):
        anycl.load(broken)
    assert len(calls) == 1  # the folder did not change meanwhile: its error stands


def test_every_save_gets_its_own_id(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    model = anycl.load(folder)
    ids = set()
    for _ in range(3):
        model.save(folder, overwrite=True)
        ids.add(json.loads((folder / "anycl_manifest.json").read_text())["save_id"])
    assert len(ids) == 3

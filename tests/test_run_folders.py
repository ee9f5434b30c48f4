"""What a run leaves in its folders and what it takes from them (issue 32): checkpoints are removed only where
anycl wrote them (the user's files in ``checkpoints/`` survive a fresh run, a resume and the pruning of old
checkpoints), the ``latest`` pointer cannot lead out of the run's folder, a resume checks that the checkpoint was
written by this run, the output lock knows its own process, and exports refuse a folder that is not empty."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys

import pytest
from toy_modality import toy_rows

import anycl
from anycl import cli
from anycl.api import build_model
from anycl.errors import ConfigError
from anycl.training.checkpoint import MARKER, complete_checkpoints, latest_checkpoint

LOCK_FILE = ".anycl.lock"
TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3)
RUN = dict(TOY, epochs=2, checkpoint_every=2)  # 24 rows: 3 batches an epoch, checkpoints at steps 2, 4, 6


def _mine(folder, name="notes.txt", text="mine"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


# -- checkpoints: only what anycl wrote is removed ------------------------------------------------------------
def test_resume_latest_with_no_checkpoint_keeps_the_users_files_in_checkpoints(tmp_path):
    out = tmp_path / "run"
    notes = _mine(out / "checkpoints")
    own = _mine(out / "checkpoints" / "plots", "loss.png", "png")
    anycl.fit(toy_rows(24), output_dir=str(out), resume_from="latest", **RUN)
    assert notes.read_text() == "mine" and own.read_text() == "png"
    assert [s for s, _ in complete_checkpoints(out / "checkpoints")] == [4, 6]  # keep_checkpoints=2


def test_a_fresh_run_with_overwrite_removes_only_anycls_checkpoints(tmp_path, caplog):
    out = tmp_path / "run"
    anycl.fit(toy_rows(24), output_dir=str(out), keep_checkpoints=None, **{**RUN, "seed": 4, "epochs": 3})
    root = out / "checkpoints"
    notes = _mine(root)
    in_step = _mine(root / "step-2", "why-step-2.txt", "a note beside a checkpoint")
    (root / ".tmp-step-12").mkdir()  # a write killed half-way: anycl's
    (root / ".tmp-step-12" / "model.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="anycl"):
        anycl.fit(toy_rows(24), output_dir=str(out), overwrite=True, keep_checkpoints=None, **RUN)
    assert notes.read_text() == "mine"
    assert "notes.txt" in caplog.text and "why-step-2.txt" in caplog.text  # the warning names what it kept
    # the old run's checkpoints are gone (step-8 of its 9 steps too); step-2 is the new run's, with the user's note
    assert sorted(p.name for p in root.iterdir()) == ["latest", "notes.txt", "step-2", "step-4", "step-6"]
    assert in_step.read_text() == "a note beside a checkpoint"
    for _, step in complete_checkpoints(root):
        assert json.loads((step / MARKER).read_text())["run"]["seed"] == 3
    marker = json.loads((root / "step-2" / MARKER).read_text())
    assert "why-step-2.txt" not in marker["files"] and "model.safetensors" in marker["files"]
    assert latest_checkpoint(root).name == "step-6"
    resumed = anycl.fit(
        toy_rows(24), output_dir=str(out), resume_from=str(root / "step-2"), keep_checkpoints=None, **RUN
    )
    assert resumed.trainer.global_step == 6  # the carried-over note does not stop a resume


def test_pruned_checkpoints_keep_the_users_files(tmp_path):
    out = tmp_path / "run"
    anycl.fit(toy_rows(24), output_dir=str(out), keep_checkpoints=None, **RUN)
    root = out / "checkpoints"
    note = _mine(root / "step-2", "keep-me.txt")
    anycl.fit(toy_rows(24), output_dir=str(out), resume_from=str(root / "step-4"), **RUN)  # saves 6; prunes 2
    assert [s for s, _ in complete_checkpoints(root)] == [4, 6]
    assert note.read_text() == "mine" and sorted(p.name for p in note.parent.iterdir()) == ["keep-me.txt"]


def test_a_clear_follows_no_link_and_keeps_a_file_named_like_the_pointer(tmp_path):
    from anycl.training.checkpoint_clear import clear_checkpoints

    elsewhere = tmp_path / "elsewhere"
    _mine(elsewhere, "model.json", "not a checkpoint")
    root = tmp_path / "run" / "checkpoints"
    root.mkdir(parents=True)
    (root / "step-3").symlink_to(elsewhere)
    (root / "latest").write_text("my latest thoughts")
    assert clear_checkpoints(root) == ["latest", "step-3"]
    assert (elsewhere / "model.json").read_text() == "not a checkpoint"


# -- the latest pointer names a checkpoint inside the run ----------------------------------------------------
def _checkpoint(tmp_path, name="src"):
    out = tmp_path / name
    anycl.fit(toy_rows(24), output_dir=str(out), keep_checkpoints=None, **RUN)
    return out / "checkpoints" / "step-2"


@pytest.mark.parametrize("pointer", ["outside", "absolute", "link"])
def test_a_latest_pointer_out_of_the_run_folder_is_refused(tmp_path, pointer):
    other = _checkpoint(tmp_path)
    root = tmp_path / "run" / "checkpoints"
    root.mkdir(parents=True)
    if pointer == "link":
        (root / "step-9").symlink_to(other)
        (root / "latest").write_text("step-9")
    else:
        (root / "latest").write_text(os.path.relpath(other, root) if pointer == "outside" else str(other))
    with pytest.raises(ConfigError, match=r"checkpoints/latest' names .* not a checkpoint folder inside .*Delete it"):
        anycl.fit(toy_rows(24), output_dir=str(tmp_path / "run"), resume_from="latest", **RUN)


# -- a resume continues the same run ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message, differences",
    [
        ({"batch_size": 4}, "batch_size 8 there, 4 now", 1),
        ({"rows": 32}, "train_rows 24 there, 32 now", 1),
        ({"encoder_options": {"width": 16}}, "encoder_options None there, {'width': 16} now", 1),
        ({"loss": "toy_queue"}, "loss 'infonce' there, 'toy_queue' now", 2),  # and the loss's options
        ({"epochs": 3}, "epochs 2 there, 3 now", 1),
    ],
)
def test_resume_with_other_options_names_what_differs_before_any_model_is_built(
    tmp_path, monkeypatch, change, message, differences
):
    step = _checkpoint(tmp_path)
    change = dict(change)
    rows = toy_rows(change.pop("rows", 24))

    def no_model(*a, **k):
        raise AssertionError("a model was built before the checkpoint was compared")

    with monkeypatch.context() as mp:
        mp.setattr(anycl.api, "build_model", no_model)
        with pytest.raises(ConfigError) as info:
            anycl.fit(rows, output_dir=str(tmp_path / "b"), resume_from=str(step), **{**RUN, **change})
    text = str(info.value)
    assert message in text and "resume_force=True" in text and "\n" not in text
    assert text.count(" there, ") == differences  # only what differs


def test_resume_force_goes_on_with_a_warning(tmp_path, caplog):
    step = _checkpoint(tmp_path)
    with caplog.at_level(logging.WARNING, logger="anycl"):
        model = anycl.fit(toy_rows(32), output_dir=str(tmp_path / "b"), resume_from=str(step), resume_force=True, **RUN)
    assert "resume_force=True" in caplog.text and "train_rows 24 there, 32 now" in caplog.text
    assert model.trainer.global_step == 8  # 4 batches an epoch now, resumed after step 2
    assert "resume_force" in anycl.api.FIT_OPTIONS


def test_resume_of_a_checkpoint_that_records_no_run_is_not_compared(tmp_path):
    step = _checkpoint(tmp_path)
    marker = json.loads((step / MARKER).read_text())
    del marker["run"]  # as a Trainer used outside fit (or an older anycl) writes it
    (step / MARKER).write_text(json.dumps(marker))
    model = anycl.fit(toy_rows(24), output_dir=str(tmp_path / "b"), resume_from=str(step), **{**RUN, "batch_size": 12})
    assert model.trainer.global_step == 4  # 2 batches of 12 an epoch: step 2 was the end of epoch 0


# -- the output lock knows its own process -------------------------------------------------------------------
def _lock(out, **fields):
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "started": "t", **fields}))


def test_a_lock_naming_this_process_is_stale_when_it_holds_none(tmp_path):
    # a container restarted: its run is pid 1 again, and the lock of the run before names pid 1
    _lock(tmp_path / "run", pid=os.getpid())
    anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "run"), overwrite=True, **TOY)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def _proc_start(pid):
    with open(f"/proc/{pid}/stat") as f:
        ticks = f.read().rsplit(")", 1)[1].split()[19]
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f"{f.read().strip()}:{ticks}"


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times come from Linux /proc")
def test_a_lock_whose_pid_now_belongs_to_another_process_is_stale(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "live", pid=sleeper.pid, process_start=_proc_start(sleeper.pid))
        with pytest.raises(ConfigError, match=rf"in use by another anycl run \(pid {sleeper.pid} on host"):
            anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "live"), overwrite=True, **TOY)
        boot, ticks = _proc_start(sleeper.pid).rsplit(":", 1)
        _lock(tmp_path / "reused", pid=sleeper.pid, process_start=f"{boot}:{int(ticks) - 1}")  # started earlier
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "reused"), overwrite=True, **TOY)
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"pid": "12", "host": null}'])
def test_an_empty_or_garbage_lock_is_taken_over_with_a_warning_naming_it(tmp_path, caplog, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(content)
    os.utime(out / LOCK_FILE, (1e9, 1e9))  # an old file: not a lock another run is writing right now
    with caplog.at_level(logging.WARNING, logger="anycl"):
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(out), overwrite=True, **TOY)
    assert str(out / LOCK_FILE) in caplog.text and "empty or unreadable" in caplog.text
    assert not (out / LOCK_FILE).exists()


def test_output_dir_naming_a_file_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "out.txt"
    f.write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(f), **TOY)
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in toy_rows(16)))
    code = cli.main(["fit", str(data), "--modality", "toyvec", "--max-steps", "1", "--output-dir", str(f), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is a file, not a folder" in err and "Errno" not in err and len(err.splitlines()) == 1
    assert f.read_text() == "mine"


# -- exports refuse a folder that is not empty -----------------------------------------------------------------
def test_sentence_transformers_export_refuses_a_folder_that_is_not_empty(tmp_path, minilm_path):
    model = build_model({"anchor": "text", "positive": "text"}, model=minilm_path, head=None)
    out = tmp_path / "st"
    for name in ("README.md", "config.json", "notes.txt"):
        _mine(out, name)
    with pytest.raises(FileExistsError, match=r"not empty \(it holds README.md, config.json, notes.txt\).*overwrite"):
        model.export_sentence_transformers(str(out))
    assert all((out / n).read_text() == "mine" for n in ("README.md", "config.json", "notes.txt"))
    model.export_sentence_transformers(str(out), overwrite=True)  # replaces its own names, keeps the others
    assert (out / "README.md").read_text() != "mine" and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "config.json").read_text())  # the model's config
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        model.export_sentence_transformers(str(tmp_path / "file"), overwrite=True)


def test_onnx_export_refuses_a_folder_that_is_not_empty(tmp_path):
    model = anycl.fit(toy_rows(16), max_steps=1, **TOY)
    out = tmp_path / "onnx"
    _mine(out, "model.onnx", "my own graph")
    with pytest.raises(FileExistsError, match=r"it holds model.onnx\).*pass overwrite=True"):
        model.export_onnx(str(out), example=[r["anchor"] for r in toy_rows(2)])
    assert (out / "model.onnx").read_text() == "my own graph"
    pytest.importorskip("onnx")
    with pytest.raises(FileExistsError, match="it holds model.onnx"):  # through the registry of formats too
        model.export("onnx", str(out), example=[r["anchor"] for r in toy_rows(2)])
    path = model.export("onnx", str(out), example=[r["anchor"] for r in toy_rows(2)], overwrite=True)
    assert os.path.getsize(path) > 100 and (out / "README.md").exists()
    shutil.rmtree(out)
    model.export_onnx(str(out), example=[r["anchor"] for r in toy_rows(2)])  # a new folder needs nothing

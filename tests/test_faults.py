"""Faults and bad inputs a hostile new user tries (issue 17): nothing silent, nothing lost, nothing executed.

Malformed tables, save(overwrite=True) beside other files, planted pickles in a checkpoint, bad numbers,
two runs on one output_dir, truncated weights, a path under a file, a full disk and a kill during a save.
"""

import errno
import json
import logging
import os
import pickle
import signal
import socket
import stat
import subprocess
import sys
import threading

import pytest
import torch
from toy_modality import toy_rows

import anycl
from anycl import cli
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError, DataError
from anycl.training.checkpoint import complete_checkpoints, latest_checkpoint

LOCK_FILE = ".anycl.lock"  # anycl.files.LOCK_FILE, spelt out so that this file runs against older anycl too

HERE = os.path.dirname(os.path.abspath(__file__))
TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3)


def _write(path, text):
    path.write_text(text)
    return path


# -- 1. tables -------------------------------------------------------------------------------------------
def test_semicolon_and_tab_separated_csv_are_read_as_columns(tmp_path):
    semi = _write(tmp_path / "pairs.csv", "anchor;positive\nwhat is a cat;a small feline\nrivers;water flows\n")
    rows = to_rows(str(semi))
    assert rows.columns == ["anchor", "positive"]
    assert rows[0] == {"anchor": "what is a cat", "positive": "a small feline"}
    tab = _write(tmp_path / "tab.csv", "anchor\tpositive\na, b\tc; d\ne\tf\n")
    assert to_rows(str(tab))[0] == {"anchor": "a, b", "positive": "c; d"}


def test_one_column_table_that_looks_separated_is_refused_naming_the_separator(tmp_path):
    ragged = _write(tmp_path / "ragged.csv", "anchor;positive\na;b\nc;d;e\n")
    with pytest.raises(DataError, match=r"Pass sep=';' \(command line: --sep ';'\)"):
        to_rows(str(ragged))
    items = _write(tmp_path / "items.csv", "text\nhello; world\nfoo; bar\nbaz\n")
    with pytest.raises(DataError, match=r"67% of its values contain ';'.*pass sep=','"):
        to_rows(str(items))
    assert to_rows(str(items), sep=",").column("anchor") == ["hello; world", "foo; bar", "baz"]  # as asked


def test_unquoted_comma_is_an_error_naming_the_line_not_an_invented_index(tmp_path):
    bad = _write(tmp_path / "pairs.csv", "anchor,positive\nq1,doc, with comma\nq2,doc2, with comma\n")
    with pytest.raises(DataError, match=r"pairs.csv' line 2: 3 fields, but the header has 2"):
        to_rows(str(bad))
    short = _write(tmp_path / "short.csv", "anchor,positive\nq1,d1\n\nq2\n")
    with pytest.raises(DataError, match=r"line 4: 1 fields"):
        to_rows(str(short))
    quoted = _write(tmp_path / "ok.csv", 'anchor,positive\nq1,"doc, with comma"\n"multi\nline",d2\n')
    rows = to_rows(str(quoted))
    assert rows.column("anchor") == ["q1", "multi\nline"] and rows[0]["positive"] == "doc, with comma"


def test_cli_refuses_a_ragged_semicolon_file_with_exit_2_and_takes_sep(tmp_path, capsys):
    ragged = _write(tmp_path / "ragged.csv", "anchor;positive\na;b\nc;d;e\n")
    assert cli.main(["fit", str(ragged), "--modality", "text", "--output-dir", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--sep ';'" in err and len(err.strip().splitlines()) == 1
    # with --sep ';' the file is read as two columns, and its bad row is named
    assert (
        cli.main(["fit", str(ragged), "--modality", "text", "--sep", ";", "--output-dir", str(tmp_path / "o"), "-q"])
        == 2
    )
    err = capsys.readouterr().err
    assert "ragged.csv' line 3: 3 fields, but the header has 2" in err and len(err.strip().splitlines()) == 1


def test_near_miss_columns_warn_with_the_mapping_and_others_are_listed(tmp_path, caplog):
    rows = to_rows(
        [
            {"anchor": "a", "positive": "b", "hard_negative": "c", "labels": 1, "id": 7},
            {"anchor": "d", "positive": "e", "hard_negative": "f", "labels": 2, "id": 8},
        ]
    )
    assert rows.columns == ["anchor", "positive"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("columns={'negative': 'hard_negative'}" in w for w in warnings), warnings
    assert any("columns={'label': 'labels'}" in w for w in warnings), warnings
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("ignoring column(s) ['id']" in m for m in infos), infos
    caplog.clear()
    to_rows(
        [{"query": "a", "positive": "b", "pos": "x"}, {"query": "c", "positive": "d", "pos": "y"}],
        columns={"anchor": "query"},
    )
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # 'positive' is taken: pos is other


# -- 2. save(overwrite=True) and permissions ----------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_model():
    return anycl.fit(toy_rows(16), max_steps=1, **TOY)


def test_overwrite_keeps_the_users_files_and_refuses_a_folder_anycl_did_not_write(tmp_path, toy_model):
    out = tmp_path / "m"
    toy_model.save(out)
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    toy_model.save(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "extra").is_dir()
    assert anycl.load(out) is not None
    import tempfile

    real_mkdtemp = tempfile.mkdtemp

    def fail_before_the_swap(*a, prefix="", **k):  # after the user's files moved into the new folder
        if ".old-" in prefix:
            raise OSError(errno.EIO, "I/O error")
        return real_mkdtemp(*a, prefix=prefix, **k)

    def fail_at_the_swap(a, b):
        raise OSError(errno.EIO, "I/O error")

    from anycl import files as anycl_files

    # where folders cannot trade places in one step (the old one is renamed aside first), and where they can
    for mp_exchange in (lambda a, b: False, fail_at_the_swap):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tempfile, "mkdtemp", fail_before_the_swap)
            mp.setattr(anycl_files, "exchange", mp_exchange)
            with pytest.raises(OSError, match="I/O error"):
                toy_model.save(out, overwrite=True)
        assert (out / "notes.txt").read_text() == "mine" and (out / "extra").is_dir()  # given back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"] and anycl.load(out) is not None
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(FileExistsError, match="anycl did not write"):
        toy_model.save(other, overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.jpg"]
    (tmp_path / "run" / "model").mkdir(parents=True)  # fit's model folder: refused before training
    (tmp_path / "run" / "model" / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="anycl did not write.*nothing was trained"):
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "run"), overwrite=True, **TOY)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_saved_model_and_checkpoints_follow_the_umask(tmp_path, toy_model, mask):
    old = os.umask(mask)
    try:
        toy_model.save(tmp_path / "m")
        anycl.fit(toy_rows(16), max_steps=2, checkpoint_every=2, output_dir=str(tmp_path / "run"), **TOY)
    finally:
        os.umask(old)
    for root in (tmp_path / "m", tmp_path / "run" / "model", tmp_path / "run" / "checkpoints" / "step-2"):
        for p in [root, *root.rglob("*")]:
            want = (0o777 if p.is_dir() else 0o666) & ~mask
            assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


# -- 3. checkpoints: no pickle, planted pickles never run -----------------------------------------------------
class _Planted:
    """Unpickling this creates a folder: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _checkpointed_run(tmp_path, name="run"):
    out = tmp_path / name
    model = anycl.fit(
        toy_rows(24), epochs=2, checkpoint_every=2, keep_checkpoints=None, output_dir=str(out), loss="toy_queue", **TOY
    )
    return out, model


def test_checkpoint_holds_only_json_and_safetensors_and_resume_unpickles_nothing(tmp_path, monkeypatch):
    out, full = _checkpointed_run(tmp_path)
    step = out / "checkpoints" / "step-4"
    assert {p.suffix for p in step.iterdir()} == {".json", ".safetensors"}
    for p in step.glob("*.safetensors"):  # safetensors: an 8-byte length, a JSON header, raw bytes
        n = int.from_bytes(p.read_bytes()[:8], "little")
        json.loads(p.read_bytes()[8 : 8 + n])

    def no_unpickling(*a, **k):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    again = anycl.fit(toy_rows(24), epochs=2, output_dir=str(out), resume_from=str(step), loss="toy_queue", **TOY)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    assert again.trainer.loss.calls == 6  # the loss's extra state (4 calls when saved) came back, then 2 more


@pytest.mark.parametrize("planted", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_planted_pickle_in_a_checkpoint_is_refused_and_never_runs(tmp_path, planted, monkeypatch):
    from anycl import api

    out, _ = _checkpointed_run(tmp_path)

    def no_model(*a, **k):
        raise AssertionError("a model was built before the checkpoint was checked")

    monkeypatch.setattr(api, "build_model", no_model)
    step = latest_checkpoint(out / "checkpoints")
    marker = tmp_path / "code-ran"
    torch.save(_Planted(str(marker)), step / planted)  # what Accelerate's loader reads with torch.load
    with pytest.raises(ConfigError, match=rf"holds pickle file\(s\) \['{planted}'\].*never unpickles"):
        anycl.fit(toy_rows(24), epochs=2, output_dir=str(out), resume_from="latest", loss="toy_queue", **TOY)
    assert not marker.exists()


# -- 4. numbers and options, checked before any model loads --------------------------------------------------
BAD_OPTIONS = [
    ({"max_steps": -5}, "max_steps must be an integer >= 1, got -5"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"lr": -1}, "lr must be a finite number > 0, got -1"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"epochs": -2}, "epochs must be an integer >= 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"temperature": 0}, "temperature must be a finite number > 0"),
    ({"loss_options": {"temperature": -0.1}}, r"loss_options\['temperature'\] must be a finite number > 0"),
    ({"loss_options": "temperature=0.1"}, r"loss_options must be a mapping.*'key=value' string is not read"),
    ({"warmup_ratio": 1.5}, "warmup_ratio must be a finite number >= 0 and <= 1"),
    ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"num_workers": -1}, "num_workers must be an integer >= 0"),
    ({"eval_every": 0}, "eval_every must be an integer >= 1"),
    ({"log_every": 0}, "log_every must be an integer >= 1"),
    ({"keep_checkpoints": 0}, "keep_checkpoints must be a positive integer"),
    ({"on_bad_item": "ignore"}, "on_bad_item must be 'raise' or 'skip'"),
]


@pytest.mark.parametrize("options,message", BAD_OPTIONS)
def test_bad_numbers_are_config_errors_before_any_model_loads(options, message, monkeypatch):
    from anycl import api

    def no_model(*a, **k):
        raise AssertionError("a model was built before the options were checked")

    monkeypatch.setattr(api, "build_model", no_model)
    with pytest.raises(ConfigError, match=message):
        anycl.fit(toy_rows(16), **{**TOY, **options})


def test_loss_constructor_errors_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="loss 'infonce': infonce: chunk_size must be >= 1"):  # not a bare ValueError
        anycl.fit(toy_rows(16), loss="infonce", loss_options={"chunk_size": 0}, **TOY)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--max-steps", "-5"], "max_steps must be an integer >= 1"),
        (["--lr", "-1"], "lr must be a finite number > 0"),
        (["--temperature", "-1"], "temperature must be a finite number > 0"),
        (["--loss-options", "temperature=0.1"], "loss_options must be a mapping"),
    ],
)
def test_cli_reports_bad_numbers_in_one_line_with_exit_2(tmp_path, capsys, flags, message):
    data = _write(tmp_path / "pairs.csv", "anchor,positive\na,b\nc,d\n")
    code = cli.main(["fit", str(data), "--modality", "text", "--output-dir", str(tmp_path / "o"), "-q", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err and len(err.splitlines()) == 1 and "unexpected" not in err


# -- 5. two runs on one output_dir ----------------------------------------------------------------------------
def _lock(out, pid, host=None):
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "t"}))


def test_a_second_run_on_a_live_output_dir_refuses_naming_the_first(tmp_path):
    out = tmp_path / "run"
    started, release = threading.Event(), threading.Event()
    errors = []

    def hold(trainer, step, logs):  # the first run waits inside its training loop
        started.set()
        release.wait(60)

    def first():
        try:
            anycl.fit(toy_rows(16), max_steps=1, output_dir=str(out), callbacks=[hold], **TOY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(120)
        for extra in ({"overwrite": True}, {"resume_from": "latest", "checkpoint_every": 1}):
            with pytest.raises(ConfigError, match=rf"in use by another anycl run \(pid {os.getpid()} on host "):
                anycl.fit(toy_rows(16), max_steps=1, output_dir=str(out), **TOY, **extra)
    finally:
        release.set()
        t.join(120)
    assert not errors
    assert not (out / LOCK_FILE).exists()  # released when the first run ended
    assert anycl.load(out) is not None


def test_lock_of_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "busy", sleeper.pid)
        with pytest.raises(ConfigError, match=rf"pid {sleeper.pid} on host"):
            anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "busy"), overwrite=True, **TOY)
    finally:
        sleeper.kill()
        sleeper.wait()
    anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "busy"), overwrite=True, **TOY)  # now stale
    assert not (tmp_path / "busy" / LOCK_FILE).exists()
    _lock(tmp_path / "far", 1, host="another-host.example")
    with pytest.raises(ConfigError, match="another-host.example.*delete the lock file"):
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "far"), overwrite=True, **TOY)


# -- 6/7. corrupt files and a path under a file ---------------------------------------------------------------
def test_truncated_weights_give_an_error_naming_the_file(tmp_path, toy_model):
    toy_model.save(tmp_path / "m")
    weights = tmp_path / "m" / "towers" / "toyvec" / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(ConfigError, match=r"encoder.safetensors is truncated"):
        anycl.load(tmp_path / "m")
    weights.write_bytes(b"\x00\x01")
    with pytest.raises(ConfigError, match=r"encoder.safetensors is truncated or corrupt"):
        anycl.load(tmp_path / "m")


def test_a_pickle_planted_in_a_model_folder_is_refused(tmp_path, toy_model):
    toy_model.save(tmp_path / "m")
    torch.save(_Planted(str(tmp_path / "code-ran")), tmp_path / "m" / "towers" / "toyvec" / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"pickle file\(s\) \['towers/toyvec/pytorch_model.bin'\]"):
        anycl.load(tmp_path / "m")
    assert not (tmp_path / "code-ran").exists()


def test_truncated_text_model_safetensors_names_the_file(tmp_path, minilm_path):
    from anycl.api import build_model

    model = build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "towers" / "text" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConfigError, match=r"text/model.safetensors is truncated"):
        anycl.load(tmp_path / "m")


def test_corrupt_checkpoint_file_is_named_on_resume(tmp_path):
    out, _ = _checkpointed_run(tmp_path)
    step = latest_checkpoint(out / "checkpoints")
    (step / "optimizer.safetensors").write_bytes((step / "optimizer.safetensors").read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"optimizer.safetensors is truncated"):
        anycl.fit(toy_rows(24), epochs=2, output_dir=str(out), resume_from="latest", loss="toy_queue", **TOY)


def test_saving_under_a_file_says_so(tmp_path, toy_model):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"file.txt' is a file, not a folder"):
        toy_model.save(tmp_path / "file.txt" / "model")
    with pytest.raises(ConfigError, match=r"file.txt' is a file, not a folder"):
        anycl.fit(toy_rows(16), max_steps=1, output_dir=str(tmp_path / "file.txt" / "run"), **TOY)


# -- 8. a full disk and a kill during a save ---------------------------------------------------------------------
def _disk_full_when_writing(monkeypatch, where):
    """The first tensor file written to a path containing ``where`` gets half written, then ENOSPC
    (through safetensors and torch.save alike)."""
    import safetensors.torch as st

    def failing(real):
        def write(obj, filename, *a, **k):
            if where in os.fspath(filename):
                with open(filename, "wb") as f:  # half a file, then the disk is full
                    f.write(b"\x00" * 10)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj, filename, *a, **k)

        return write

    monkeypatch.setattr(st, "save_file", failing(st.save_file))
    monkeypatch.setattr(torch, "save", failing(torch.save))


def test_disk_full_during_a_checkpoint_keeps_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    reference = anycl.fit(toy_rows(24), epochs=2, output_dir=str(tmp_path / "ref"), loss="toy_queue", **TOY)
    _disk_full_when_writing(monkeypatch, ".tmp-step-4")  # step 2's checkpoint is written, step 4's is not
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left on device.*earlier checkpoints .* are unchanged") as info:
        anycl.fit(toy_rows(24), epochs=2, checkpoint_every=2, output_dir=str(out), loss="toy_queue", **TOY)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert [s for s, _ in complete_checkpoints(out / "checkpoints")] == [2]
    resumed = anycl.fit(toy_rows(24), epochs=2, output_dir=str(out), resume_from="latest", loss="toy_queue", **TOY)
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v)


def test_disk_full_during_model_save_keeps_the_previous_model(tmp_path, toy_model, monkeypatch):
    out = tmp_path / "m"
    toy_model.save(out)
    before = anycl.load(out).encode([[0.1] * 6])
    _disk_full_when_writing(monkeypatch, ".m.tmp-")
    with pytest.raises(OSError, match="No space left on device.*the model already there is unchanged"):
        toy_model.save(out, overwrite=True)
    monkeypatch.undo()
    assert torch.equal(anycl.load(out).encode([[0.1] * 6]), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


KILL_WORKER = """
import os, signal, sys
sys.path.insert(0, {here!r})
import safetensors.torch as st
import anycl
from toy_modality import toy_rows

model = anycl.fit(toy_rows(16), modality="toyvec", batch_size=8, max_steps=1, progress=False, log_with=None, seed=3)
model.save(sys.argv[1])
real = st.save_file

def save_file(tensors, filename, *a, **k):
    real(tensors, filename, *a, **k)
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-save, after one file is written

st.save_file = save_file
anycl.fit(toy_rows(16), modality="toyvec", batch_size=8, max_steps=3, progress=False, log_with=None,
          seed=4).save(sys.argv[1], overwrite=True)
"""


def test_a_kill_during_model_save_leaves_the_previous_model_loadable(tmp_path, toy_model):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    out = tmp_path / "m"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_WORKER.format(here=HERE), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # the worker's first model is toy_model's run (same data, options and seed)
    torch.testing.assert_close(anycl.load(out).encode([[0.1] * 6]), toy_model.encode([[0.1] * 6]))
    toy_model.save(out, overwrite=True)  # the half-written temporary folder does not block the next save
    assert anycl.load(out) is not None

"""Checkpoint and resume: a run SIGKILLed mid-epoch (while writing a checkpoint) resumes from the last
complete checkpoint and ends with the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys

import pytest
import resume_worker
import torch
from toy_modality import toy_rows

import anycl
from anycl.errors import ConfigError
from anycl.training.checkpoint import MARKER, complete_checkpoints, latest_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))


def test_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path):
    reference = anycl.fit(resume_worker.rows(), output_dir=str(tmp_path / "ref"), **resume_worker.OPTIONS)
    assert reference.trainer.global_step == 12

    run = tmp_path / "run"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "resume_worker.py"), str(run), "6"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    root = run / "checkpoints"
    # killed while writing step 6 (epoch 1): the half-written folder is never "latest"
    assert (root / ".tmp-step-6").is_dir() and not (root / ".tmp-step-6" / MARKER).exists()
    assert [s for s, _ in complete_checkpoints(root)] == [3]
    assert latest_checkpoint(root).name == "step-3"  # mid-epoch 0: 3 of its 4 batches done
    with pytest.raises(ConfigError, match="not a complete anycl checkpoint"):
        anycl.fit(
            resume_worker.rows(), output_dir=str(run), resume_from=str(root / ".tmp-step-6"), **resume_worker.OPTIONS
        )

    resumed = anycl.fit(resume_worker.rows(), output_dir=str(run), resume_from="latest", **resume_worker.OPTIONS)
    assert resumed.trainer.global_step == 12
    ref_state, got = reference.state_dict(), resumed.state_dict()
    for k in ref_state:
        torch.testing.assert_close(got[k], ref_state[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
    # the loss's memory queue and extra state came back too
    torch.testing.assert_close(resumed.trainer.loss.queue, reference.trainer.loss.queue)
    assert resumed.trainer.loss.calls == reference.trainer.loss.calls == 12
    # the stale temporary folder is gone, two checkpoints kept, "latest" is the last one
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-12", "step-9"]
    assert latest_checkpoint(root).name == "step-12"


def test_resume_from_a_path_and_latest_with_nothing_saved_yet(tmp_path):
    opts = dict(modality="toyvec", batch_size=8, epochs=2, progress=False, log_with=None, seed=1)
    full = anycl.fit(toy_rows(24), output_dir=str(tmp_path / "a"), checkpoint_every=2, keep_checkpoints=None, **opts)
    root = tmp_path / "a" / "checkpoints"
    assert [s for s, _ in complete_checkpoints(root)] == [2, 4, 6]
    # "latest" with no checkpoint yet: trains from the start
    fresh = anycl.fit(toy_rows(24), output_dir=str(tmp_path / "b"), resume_from="latest", **opts)
    again = anycl.fit(toy_rows(24), output_dir=str(tmp_path / "a"), resume_from=str(root / "step-4"), **opts)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v)
        torch.testing.assert_close(again.state_dict()[k], v)


def test_checkpoint_options_give_clear_errors(tmp_path):
    rows = toy_rows(8)
    with pytest.raises(ConfigError, match="checkpoint_every needs output_dir"):
        anycl.fit(rows, modality="toyvec", checkpoint_every=2, progress=False)
    with pytest.raises(ConfigError, match="resume_from='latest' needs output_dir"):
        anycl.fit(rows, modality="toyvec", resume_from="latest", progress=False)
    with pytest.raises(ConfigError, match="is not a folder"):
        anycl.fit(rows, modality="toyvec", resume_from=str(tmp_path / "nope"), progress=False)
    with pytest.raises(ConfigError, match="checkpoint_every must be a positive number"):
        anycl.fit(
            rows, modality="toyvec", checkpoint_every=0.5, output_dir=str(tmp_path / "c"), progress=False, log_with=None
        )

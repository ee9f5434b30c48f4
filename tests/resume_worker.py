"""Run by tests/test_checkpoint.py in a subprocess: trains with checkpoints and SIGKILLs itself while
writing the checkpoint of step KILL_STEP (after its state files are written, before the rename)."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from toy_modality import toy_rows  # noqa: E402

# noise in prepare, dropout, a memory-queue loss with extra state: every kind of state a resume must restore
OPTIONS = dict(
    modality="toyvec",
    loss="toy_queue",
    batch_size=8,
    epochs=3,
    lr=1e-2,
    seed=5,
    progress=False,
    log_with=None,
    checkpoint_every=3,
    adapter_options={"noise": 0.2},
    encoder_options={"dropout": 0.2},
)


def rows():
    return toy_rows(32, seed=2)


if __name__ == "__main__":
    import anycl
    from anycl.training.checkpoint import Checkpointer

    out, kill_step = sys.argv[1], int(sys.argv[2])
    original = Checkpointer.write_files

    def write_files(self, folder):
        original(self, folder)
        if os.path.basename(str(folder)) == f".tmp-step-{kill_step}":
            os.kill(os.getpid(), signal.SIGKILL)

    Checkpointer.write_files = write_files
    anycl.fit(rows(), output_dir=out, **OPTIONS)
    sys.exit(3)  # never reached

"""What each process runs in tests/test_streaming.py's failure test (``accelerate launch`` with 2 processes):
process 1's share of a stream fails at its second batch; each process writes how its epoch ended."""

import json
import os
import sys

import torch
import torch.distributed as dist

from anycl.distributed import exit_process
from anycl.errors import DataError
from anycl.training.stream_steps import LockstepBatches


class Share:
    """The part of a StreamRows that LockstepBatches uses (nothing is left to drain here)."""

    def drain(self) -> int:
        return 0


def batches(rank: int):
    for b in range(3):
        if rank == 1 and b == 1:
            raise DataError("row 7 of the stream is bad")
        yield {"size": 2}


if __name__ == "__main__":
    out = sys.argv[1]
    if not dist.is_initialized():  # accelerate launch sets the environment; the group is ours to start
        dist.init_process_group("gloo")
    rank = dist.get_rank()
    steps, error = 0, None
    try:
        for _ in LockstepBatches(Share(), batches(rank), torch.device("cpu")):
            steps += 1
    except Exception as exc:  # noqa: BLE001  (recorded for the test)
        error = f"{type(exc).__name__}: {exc}"
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"steps": steps, "error": error}, f)
    exit_process()

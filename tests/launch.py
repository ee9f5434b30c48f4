"""Start a test script in two CPU processes (one gloo group) through ``accelerate launch``."""

import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``tests/<script> *args`` as two processes; asserts they exit with 0 (their output's end otherwise).

    ``--multi_gpu`` (torchrun): on a machine without a GPU anycl runs the processes as one gloo group on the
    CPU (``accelerate launch --cpu`` would start one process; docs/scale.md)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        ACCELERATE_LOG_LEVEL="error",
    )
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_port", str(free_port()), os.path.join(HERE, script), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc

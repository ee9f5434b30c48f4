"""Loading crafted model folders (and resuming from crafted checkpoints) in a child process, under a memory cap.

``probe(jobs)`` runs each job in one fresh Python process and returns, per job, how it ended: ``ok``, the error's
type and message, whether that is anycl's own error (an ``AnyclError``), and how much the process's peak resident
memory grew during the job (``growth_mb``; after a warm-up load of an intact folder, so the libraries' own first
load is not counted). Each job may grow the child's address space by ``CAP_BYTES`` at most (a soft limit set
before it): a crafted file that makes anycl allocate gigabytes fails there (with a non-anycl error) instead of
taking the machine's memory. A job that hangs (a FIFO read) ends the child at ``timeout`` seconds, and the
jobs after it are reported as not run.

Run as a script it is the child: ``python folder_probe.py JOBS.json``, one JSON line per job on stdout.
A job: ``{"label": ..., "kind": "load" | "resume", "path": ...}`` (``resume``: one optimiser step of the toy
modality's run from the checkpoint folder ``path``, with ``output_dir`` the job's ``out``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
CAP_BYTES = 1 << 30
GROWTH_LIMIT_MB = 200

# the toy run that resume jobs continue (the run that wrote the checkpoints must use the same options)
TOY_RUN = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3, loss="toy_queue")


def small_model():
    """Two built-in towers with projection heads: the wide shallow image CNN and the audio CNN (a 30 KB folder)."""
    from anycl.api import build_model

    return build_model(
        {"anchor": "image", "positive": "audio"},
        encoder_options={
            "image": {"arch": "cnn", "width": 4, "grid": 1},
            "audio": {"channels": [4, 8], "embedding_dim": 16},
        },
        head=8,
    )


def probe(jobs: List[Dict[str, Any]], warmup: Any = None, timeout: float = 240) -> Dict[str, Dict[str, Any]]:
    """{label: outcome} of ``jobs`` run in a child process (see the module docstring). ``warmup``: an intact model
    folder to load, or a job to run, before the memory cap and the first measurement."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"jobs": jobs, "warmup": warmup}, f)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE, os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    out: Dict[str, Dict[str, Any]] = {}
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), f.name],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:  # a job hung: what finished before it is reported
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = "timed out"
    finally:
        os.unlink(f.name)
    for line in stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            out[r["label"]] = r
    for job in jobs:
        out.setdefault(job["label"], {"label": job["label"], "ok": False, "error": f"not run ({stderr[-2000:]})"})
    return out


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(job: Dict[str, Any]) -> None:
    import anycl

    if job["kind"] == "load":
        anycl.load(job["path"])
    else:
        from toy_modality import toy_rows

        # one step past the checkpoint's run (max_steps 2): resume_force, since what is probed is reading the files
        anycl.fit(
            toy_rows(16), max_steps=3, output_dir=job["out"], resume_from=job["path"], resume_force=True, **TOY_RUN
        )


def main(spec_file: str) -> None:
    import resource

    import torch
    import toy_modality  # noqa: F401  (registers the toy modality)

    from anycl.errors import AnyclError

    torch.set_num_threads(1)
    with open(spec_file) as f:
        spec = json.load(f)
    warmup = spec.get("warmup")
    if warmup:
        _run(warmup if isinstance(warmup, dict) else {"kind": "load", "path": warmup})
    for job in spec["jobs"]:
        if sys.platform.startswith("linux"):  # each job may map CAP_BYTES more than the process has now
            resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + CAP_BYTES, resource.RLIM_INFINITY))
        before = _peak_mb()
        result: Dict[str, Any] = {"label": job["label"]}
        try:
            _run(job)
            result["ok"] = True
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which judges it
            result.update(
                ok=False,
                error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}",
                anycl_error=isinstance(exc, AnyclError),
            )
        result["growth_mb"] = round(_peak_mb() - before, 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

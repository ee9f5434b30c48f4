"""benchmarks/gpu_check.sh in its tiny mode on the CPU: every section runs and reports a row without an
error, the report is the table of those rows, and benchmarks/results/gpu.md is not touched (the
script writes it only from rows measured on a GPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "data",
    "infonce_ratio",
    "text_anycl",
    "text_st",
    "image_anycl",
    "image_lightly",
    "gradcache_4096",
    "gradcache_16384",
    "text_fsdp",
]


@pytest.mark.slow
@pytest.mark.timeout(2400)  # about 1.5 minutes on an idle 2-core machine, over 10 under load 6
def test_gpu_check_tiny_mode_runs_every_section_on_cpu(tmp_path, minilm_path):
    if not Path("/usr/share/datasets/fashion-mnist").exists() and not os.environ.get("ANYCL_FASHION_DIR"):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    gpu_md = ROOT / "benchmarks" / "results" / "gpu.md"
    before = gpu_md.read_text()
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        GPU_CHECK_DIR=str(tmp_path),
        ANYCL_GPU_MODEL=minilm_path,
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="2",
    )
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["section"]: r for r in map(json.loads, (tmp_path / "rows.jsonl").read_text().splitlines())}
    assert sorted(rows) == sorted(SECTIONS)
    for name, row in rows.items():
        assert "error" not in row, (name, row)
        assert row["device"] == "cpu" and row["items"] > 0 and row["seconds"] > 0
    assert rows["data"]["items"] >= 64  # enough real pairs for the largest tiny batch
    assert "distributed type:" in rows["text_fsdp"]["note"] and "encode finite: True" in rows["text_fsdp"]["note"]
    for name in SECTIONS:  # the printed table has a row per section, none failed
        assert f"| {name} |" in out.stdout
    assert "FAILED" not in out.stdout and "did not report" not in out.stdout
    assert "not writing" in out.stdout
    assert gpu_md.read_text() == before

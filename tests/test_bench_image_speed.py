"""benchmarks/bench_image_speed.py in its tiny mode: it runs and writes its tables (slow: a minute on an idle
2-core machine, many under load)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about a minute on an idle 2-core machine; ten times that under load
def test_image_speed_benchmark_tiny_writes_its_tables(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").exists() and not os.environ.get("ANYCL_FASHION_DIR"):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    audio = Path("/usr/share/sonic-pi/samples").is_dir()
    out = tmp_path / "image_speed.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_image_speed.py"), "--tiny", "--out", str(out)]
    cmd += ["--workers-sweep", "0,1", "--sweep-stems", "standard", "--audio-epochs", "1"]
    cmd += ["--sweep-data", "image,audio" if audio else "image"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), IDLE_WAIT="0")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = out.read_text()
    assert "- Before: " in text and "- After: " in text and "Highest 1-minute load" in text
    for stem in ("small", "standard"):  # one compare row per stem (1 round in tiny mode) and its verdict
        assert f"| {stem} | 1 | anycl |" in text
        assert f"- {stem} stem: median ratio " in text
    assert text.count("— **met**") + text.count("— **not met**") + text.count("no verdict**") == 2
    for w in (0, 1):
        assert f"| image | standard | {w} |" in text
        assert (f"| audio | AudioCNN | {w} |" in text) == audio
    assert "| image | small |" not in text  # --sweep-stems standard

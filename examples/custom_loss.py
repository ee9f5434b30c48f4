"""Register your own loss with a decorator and train with it — alone, or behind a MoCo memory queue.

    PYTHONPATH=. python examples/custom_loss.py

Offline (the packaged all-MiniLM-L6-v2), well under a minute on 2 CPU cores. A loss is a function (or an
``nn.Module``) of embeddings only, so ``fit``, the memory queue, GradCache and cross-process gathering
need no code of their own for it. Its keyword arguments become its options (``loss_options``).
"""

import torch
import torch.nn.functional as F

import anycl


@anycl.losses.register("cosine_margin")
def cosine_margin(anchor, positive, negative=None, labels=None, margin=0.3):
    """Hinge on cosine similarities: each anchor's positive must beat every negative by ``margin``.

    anchor, positive: (B, D). negative: optional (B, K, D) — given hard negatives, or the memory queue's
    keys when the loss is wrapped by ``moco``. The other rows' positives are in-batch negatives.
    """
    a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    pos = (a * p).sum(-1, keepdim=True)  # (B, 1)
    neg = (a @ p.T).masked_fill(torch.eye(len(a), dtype=torch.bool, device=a.device), -2.0)  # (B, B)
    if negative is not None:
        neg = torch.cat([neg, (a.unsqueeze(1) * F.normalize(negative, dim=-1)).sum(-1)], dim=1)
    return F.relu(neg - pos + margin).mean()


# How it runs across processes (see docs/losses.md and anycl.distributed): "global", the default, gives it
# the gathered global batch; stated here for the reader.
cosine_margin.distributed = "global"


def main():
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess"]
    pairs = [
        {"anchor": f"what do we know about {t}? (question {i})", "positive": f"facts on {t}, part {i}"}
        for i in range(4)
        for t in topics
    ]
    common = dict(
        modality="text", batch_size=8, max_steps=4, log_every=1, progress=False, adapter_options={"max_seq_length": 32}
    )

    model = anycl.fit(pairs, loss="cosine_margin", loss_options={"margin": 0.2}, **common)
    print("cosine_margin:", [round(h["loss"], 4) for h in model.trainer.history])

    # the same loss behind a MoCo queue of 32 keys from a momentum (EMA) key encoder
    model = anycl.fit(
        pairs, loss="moco", loss_options={"base": "cosine_margin", "queue_size": 32, "margin": 0.2}, **common
    )
    print("moco(cosine_margin):", [round(h["loss"], 4) for h in model.trainer.history])
    emb = model.encode(["what do we know about cats?", "facts on cats"])
    print("cosine(query, answer) =", round(float(emb[0] @ emb[1]), 3))


if __name__ == "__main__":
    main()

"""A small embedding model for the mining tests: each text's vector depends on that text alone (never on
the batch it comes in), so results can be compared exactly across processes, caches and backends."""

import hashlib

import torch


def base_vector(text: str, dim: int) -> torch.Tensor:
    """A fixed random vector per text; ``"name#2"`` shares ``"name"``'s vector (an exact tie)."""
    seed = int.from_bytes(hashlib.blake2b(text.split("#")[0].encode(), digest_size=8).digest(), "little") >> 1
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed))


class ItemEmbedder(torch.nn.Module):
    """``items -> (N, dim)``: each text's base vector through a linear map, one item at a time; counts the
    items it embeds (``seen``) and its calls."""

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        self.dim = dim
        self.proj = torch.nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed)))
        self.seen = 0
        self.calls = 0

    @torch.no_grad()
    def forward(self, items):
        self.calls += 1
        self.seen += len(items)
        return torch.stack([self.proj(base_vector(x, self.dim)) for x in items])


def pairs_and_corpus(n_pairs: int = 60, n_extra: int = 240):
    """(anchor, positive) pairs (a few anchors with two positives) and extra documents, some of which are
    exact duplicates in embedding space of other documents (``#2``)."""
    pairs = [(f"query {i}", f"doc {i}") for i in range(n_pairs)]
    pairs += [(f"query {i}", f"doc {i} other") for i in range(0, n_pairs, 7)]
    corpus = [f"extra {j}" for j in range(n_extra)]
    corpus += [f"extra {j}#2" for j in range(0, n_extra, 5)] + [f"doc {i}#2" for i in range(0, n_pairs, 3)]
    corpus += [f"doc 4#{c}" for c in range(3, 40)]  # more equal scores than a search's slack: its fallback
    return pairs, corpus


MINING_CASES = {
    "top": dict(num_negatives=3, range_max=20),
    "window_random": dict(num_negatives=2, range_min=2, range_max=12, sampling="random", relative_margin=0.05),
    "short_random_fill": dict(num_negatives=2, range_max=3, max_score=0.2, on_short="random"),
    "small_chunks": dict(num_negatives=4, range_max=30, chunk_size=7, batch_size=5),
}

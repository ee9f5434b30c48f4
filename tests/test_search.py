"""anycl.search: the one top-k engine (block shapes, exclusions) and the ranking metrics, against brute force."""

import math

import pytest
import torch
import torch.nn.functional as F

from anycl.evaluation import KNNEvaluator, knn_accuracy
from anycl.evaluation.crossmodal import cross_modal_retrieval, recall_at_k
from anycl.search.exact import ranked_metrics, retrieval_metrics, topk


def _emb(n, d=6, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("chunk, corpus_chunk", [(7, -1), (5, None), (64, 3), (1, 1)])
def test_topk_is_the_brute_force_sort_whatever_the_blocks(chunk, corpus_chunk):
    q, c = _emb(23, seed=1), _emb(41, seed=2)
    exclude = [[i % 41, (5 * i) % 41] for i in range(23)]
    s, i = topk(q, c, 9, exclude, chunk_size=chunk, corpus_chunk_size=corpus_chunk)
    full = q @ c.T
    for r, ex in enumerate(exclude):
        full[r, ex] = float("-inf")
    ref_s, ref_i = full.sort(dim=1, descending=True)
    assert torch.allclose(s, ref_s[:, :9], atol=1e-6)
    assert torch.equal(i, ref_i[:, :9])


def test_ranked_metrics_match_the_formulas_on_a_hand_example():
    # query 0: relevant {2, 5}, ranked [2, 1, 5]: hits at ranks 1 and 3
    # query 1: relevant {0}, ranked [1, 0, 2]: hit at rank 2; query 2: no relevant document (left out)
    m = ranked_metrics([[2, 1, 5], [1, 0, 2], [0, 1, 2]], [{2, 5}, {0}, set()], ks=(1, 2))
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1
    assert m["ndcg@10"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["map@100"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    assert m["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1) / 2)


def test_recall_at_k_counts_the_rank_of_the_true_pair():
    sim = torch.randn(30, 30, generator=torch.Generator().manual_seed(3))  # no ties
    rank = (sim > sim.diagonal().unsqueeze(1)).sum(1)
    for k, v in recall_at_k(sim, [1, 3, 10]).items():
        assert v == pytest.approx(float((rank < k).float().mean()))
    q, c = _emb(30, seed=4), _emb(30, seed=5)
    ours = retrieval_metrics(q, c, [{i} for i in range(30)], ks=(1, 5))
    ref = recall_at_k(q @ c.T, [1, 5])
    assert ours["recall@1"] == pytest.approx(ref[1]) and ours["recall@5"] == pytest.approx(ref[5])


class _Table:
    """A model stand-in for cross_modal_retrieval: encode looks items up in a table."""

    def __init__(self, a, b):
        self.sides = {"anchor": "a", "positive": "b"}
        self.tables = {"a": a, "b": b}

    def encode(self, items, modality=None, batch_size=64):
        return self.tables[modality][list(items)]


def test_cross_modal_retrieval_is_recall_at_k_both_ways():
    a, b = _emb(12, seed=6), _emb(12, seed=7)
    out = cross_modal_retrieval(_Table(a, b), list(range(12)), list(range(12)), ks=(1, 5))
    there, back = recall_at_k(a @ b.T, [1, 5]), recall_at_k(b @ a.T, [1, 5])
    assert out == {
        "a_to_b_recall@1": pytest.approx(there[1]),
        "a_to_b_recall@5": pytest.approx(there[5]),
        "b_to_a_recall@1": pytest.approx(back[1]),
        "b_to_a_recall@5": pytest.approx(back[5]),
    }


def test_cross_modal_retrieval_counts_an_identical_caption_at_another_index_as_a_hit():
    n = 8
    images = [f"img{i}" for i in range(n)]
    captions = ["x"] * 4 + [f"y{i}" for i in range(4, n)]  # rows 0-3 share the caption "x"
    a = _emb(n, seed=11)
    per_caption = dict(zip(dict.fromkeys(captions), _emb(5, seed=12)))  # identical captions embed identically
    b = torch.stack([per_caption[c] for c in captions])

    class Lookup:
        sides = {"anchor": "a", "positive": "b"}

        def encode(self, items, modality=None, batch_size=64):
            return torch.stack([a[images.index(x)] if modality == "a" else per_caption[x] for x in items])

    out = cross_modal_retrieval(Lookup(), images, captions, ks=(1, 2))
    true = [{j for j in range(n) if captions[j] == captions[i]} for i in range(n)]  # by brute force
    for x, y, name in ((a, b, "a_to_b"), (b, a, "b_to_a")):
        sim = x @ y.T
        for k in (1, 2):
            ranked = [sim[i].argsort(descending=True, stable=True)[:k].tolist() for i in range(n)]
            want = sum(bool(set(r) & true[i]) for i, r in enumerate(ranked)) / n
            assert out[f"{name}_recall@{k}"] == pytest.approx(want)
    own_only = sum(int((a @ b.T)[i].argmax()) == i for i in range(n)) / n  # rows 1-3 can never find "their" index
    assert out["a_to_b_recall@1"] >= own_only


def test_knn_leave_one_out_never_counts_the_item_itself():
    emb = _emb(20, seed=8)
    labels = [i % 3 for i in range(20)]
    ev = KNNEvaluator(list(range(20)), labels, k=3)
    loo = ev._accuracy(emb)["knn@3_accuracy"]
    # the same vote by hand: each item's 3 nearest others
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    idx = sim.topk(3, dim=1).indices
    y = torch.tensor(labels)
    correct = 0
    for r in range(20):
        votes = torch.zeros(3)
        for rank, j in enumerate(idx[r].tolist()):
            votes[labels[j]] += 1.0 - 0.1 * rank / 2  # linspace(1.0, 0.9, 3)
        correct += int(votes.argmax() == y[r])
    assert loo == pytest.approx(correct / 20)
    # the train/test form: a test item that is also a training item is its own nearest neighbour
    assert knn_accuracy(emb, labels, emb, labels, k=1) == 1.0

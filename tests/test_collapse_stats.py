"""The collapse watch's similarity statistics equal a loop over the batch (duplicate positives are not
negatives); computed with a (B, B) distance, not a (B, B, D) temporary."""

import pytest
import torch

from anycl.training.collapse import similarity_stats


def _similarity_loop(anchor, positive):
    a = torch.nn.functional.normalize(anchor.double(), dim=-1)
    p = torch.nn.functional.normalize(positive.double(), dim=-1)
    pos, hardest = [], []
    for i in range(len(a)):
        pos.append(float(a[i] @ p[i]))
        others = [float(a[i] @ p[j]) for j in range(len(p)) if (p[j] - p[i]).abs().max() > 1e-6]
        if others:
            hardest.append(max(others))
    return sum(pos) / len(pos), sum(hardest) / len(hardest)


def test_similarity_stats_equal_a_loop_and_skip_duplicate_positives():
    g = torch.Generator().manual_seed(0)
    anchor, positive = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    positive[7] = positive[3]  # a duplicate positive is not a negative of row 3 (nor 3 of 7)
    positive[9] = 2 * positive[1]  # the same direction: equal once normalised
    anchor[3], anchor[1] = positive[3] + 0.01, positive[1]  # so a counted duplicate would be the hardest
    got = similarity_stats(anchor, positive)
    want_pos, want_hard = _similarity_loop(anchor, positive)
    assert got["positive"] == pytest.approx(want_pos, abs=1e-6)
    assert got["hardest_negative"] == pytest.approx(want_hard, abs=1e-6)
    # with the duplicates counted as negatives the answer would differ: the test can tell
    a = torch.nn.functional.normalize(anchor, dim=-1)
    p = torch.nn.functional.normalize(positive, dim=-1)
    naive = (a @ p.T).fill_diagonal_(float("-inf")).amax(1).mean()
    assert float(naive) != pytest.approx(want_hard, abs=1e-6)

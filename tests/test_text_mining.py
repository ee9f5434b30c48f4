"""Hard-negative mining: exact top-k against a brute-force reference, the false-negative rules, bad input."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from anycl.errors import ConfigError, DataError
from anycl.mining.mine import filter_candidates, mine_hard_negatives
from anycl.mining.pairs import distinct_pairs
from anycl.search.exact import topk


class TableEmbedder:
    """A fake model: each text maps to a fixed vector (normalised by the miner)."""

    def __init__(self, table):
        self.table = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in table.items()}
        self.calls = 0

    def __call__(self, items):
        self.calls += 1
        return torch.stack([self.table[x] for x in items])


def random_table(names, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(dim, generator=g) for n in names}


def test_chunked_topk_equals_full_sort_with_exclusions():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(37, 6, generator=g), dim=-1)
    c = F.normalize(torch.randn(53, 6, generator=g), dim=-1)
    exclude = [[i % 53, (3 * i) % 53] for i in range(37)]
    s, i = topk(q, c, 10, exclude, chunk_size=7)
    full = q @ c.T
    for r in range(37):
        full[r, exclude[r]] = float("-inf")
    ref_s, ref_i = full.topk(10, dim=1)
    assert torch.allclose(s, ref_s)
    assert torch.equal(i, ref_i)


def test_chunked_topk_marks_missing_ranks_when_corpus_is_small():
    q = F.normalize(torch.randn(2, 3), dim=-1)
    c = F.normalize(torch.randn(3, 3), dim=-1)
    s, i = topk(q, c, 5, [[0], []], chunk_size=2)
    assert torch.isinf(s[0, 2:]).all() and (i[0, 2:] == -1).all()
    assert (i[1, :3] >= 0).all() and (i[1, 3:] == -1).all()


def test_distinct_pairs_keep_each_item_once_and_mark_what_is_never_a_querys_negative():
    anchors, positives = ["q1", "q2", "q1", "d2"], ["p1", "p2", "p3", "p1"]
    corpus = ["d1", "p2", "d2", "d1"]
    pairs = distinct_pairs(anchors, positives, corpus)
    # the reference: first occurrences kept in order, the corpus before the positives
    queries, docs = list(dict.fromkeys(anchors)), list(dict.fromkeys(corpus + positives))
    assert (pairs.queries, pairs.docs) == (queries, docs)
    assert pairs.row_query == [queries.index(a) for a in anchors]
    for qi, q in enumerate(queries):
        rows = [r for r, a in enumerate(anchors) if a == q]
        assert pairs.labelled[qi] == [docs.index(positives[r]) for r in rows]
        assert pairs.own[qi] == {docs.index(positives[r]) for r in rows} | ({docs.index(q)} if q in docs else set())
    assert pairs.excluded == sum(len(s) for s in pairs.own) == 5


def test_filters_against_the_textbook_rules_with_negative_scores():
    scores = torch.tensor([[0.9, 0.5, 0.2, -0.1, -0.5, -0.7]])
    for pos in (0.6, -0.2, -0.6):
        for rmin, mx, am, rm in itertools.product((0, 1), (None, 0.3), (None, 0.1), (None, 0.5)):
            keep, counts = filter_candidates(scores, torch.tensor([pos]), rmin, mx, am, rm)
            for r, s in enumerate(scores[0].tolist()):
                ok = (
                    r >= rmin
                    and (mx is None or s <= mx)
                    and (am is None or s <= pos - am)
                    and (rm is None or s <= pos - rm * abs(pos))
                )
                assert bool(keep[0, r]) == ok, (pos, rmin, mx, am, rm, r)
            assert sum(counts.values()) + int(keep.sum()) == 6


def test_relative_margin_with_a_negative_positive_score_is_stricter_not_looser():
    # positive score -0.4; relative margin 0.5 → negatives must score <= -0.6 (multiplying would give -0.2)
    keep, counts = filter_candidates(torch.tensor([[-0.3, -0.5, -0.7]]), torch.tensor([-0.4]), relative_margin=0.5)
    assert keep.tolist() == [[False, False, True]]
    assert counts["relative_margin"] == 2


def brute_force(table, pairs, k, **rules):
    """Reference miner: full score matrix, plain Python rules, lowest positive per query."""
    emb = {n: F.normalize(v, dim=0) for n, v in table.items()}
    docs = list(dict.fromkeys(p for _, p in pairs))
    pos = {}
    for a, p in pairs:
        pos.setdefault(a, set()).add(p)
    out = {}
    for a, ps in pos.items():
        pscore = min(float(emb[a] @ emb[p]) for p in ps)
        ranked = sorted((d for d in docs if d not in ps and d != a), key=lambda d: -float(emb[a] @ emb[d]))
        ranked = ranked[: rules.get("range_max", 100)][rules.get("range_min", 0) :]
        kept = []
        for d in ranked:
            s = float(emb[a] @ emb[d])
            if rules.get("max_score") is not None and s > rules["max_score"]:
                continue
            if rules.get("absolute_margin") is not None and s > pscore - rules["absolute_margin"]:
                continue
            if rules.get("relative_margin") is not None and s > pscore - rules["relative_margin"] * abs(pscore):
                continue
            kept.append(d)
        out[a] = kept[:k]
    return out


@pytest.mark.parametrize(
    "rules",
    [{}, {"range_min": 2, "range_max": 9}, {"relative_margin": 0.1}, {"absolute_margin": 0.05, "max_score": 0.5}],
)
def test_mining_matches_brute_force_reference(rules):
    pairs = [(f"q{i}", f"d{i}") for i in range(30)] + [("q0", "d30"), ("q1", "d31")]  # q0, q1: two positives
    table = random_table([a for a, _ in pairs] + [p for _, p in pairs], seed=3)
    ref = brute_force(table, pairs, 3, **rules)
    rows, stats = mine_hard_negatives(
        TableEmbedder(table), pairs, num_negatives=3, chunk_size=4, verbose=False, **rules
    )
    expected_rows = [(a, p) for a, p in pairs if len(ref[a]) == 3]
    assert [(r["anchor"], r["positive"]) for r in rows] == expected_rows
    for r in rows:
        assert [r["negative_1"], r["negative_2"], r["negative_3"]] == ref[r["anchor"]]
    assert stats.queries == 30 and stats.corpus_size == 32
    assert stats.queries_short == sum(1 for a in ref if len(ref[a]) < 3)
    assert stats.rows_dropped == len(pairs) - len(expected_rows)


def test_several_positives_compare_with_the_lowest_and_are_never_mined():
    # q's positives: p_hi (score 1.0) and p_lo (0.6); c1 scores 0.8: above the lowest positive → filtered
    table = {
        "q": [1, 0],
        "p_hi": [1, 0],
        "p_lo": [0.6, 0.8],
        "c1": [0.8, 0.6],
        "c2": [0.3, 0.954],
        "x": [0, 1],
        "px": [0, 1],
    }
    pairs = [("q", "p_hi"), ("q", "p_lo"), ("x", "px")]
    rows, stats = mine_hard_negatives(
        TableEmbedder(table), pairs, corpus=["c1", "c2", "p_hi"], num_negatives=1, absolute_margin=0.0, verbose=False
    )
    negs = {r["anchor"]: r["negative_1"] for r in rows}
    assert negs["q"] == "c2"
    assert stats.filtered["absolute_margin"] >= 1
    for r in rows:  # never a query's own positive
        assert r["negative_1"] not in {p for a, p in pairs if a == r["anchor"]}


def test_duplicate_of_a_positive_in_the_corpus_and_the_query_itself_are_not_negatives():
    table = {"q": [1, 0, 0], "p": [0.9, 0.1, 0], "other": [0, 1, 0], "far": [0, 0, 1]}
    rows, stats = mine_hard_negatives(
        TableEmbedder(table),
        [("q", "p"), ("other", "far")],
        corpus=["p", "p", "q", "other", "far"],
        num_negatives=2,
        verbose=False,
    )
    q_row = rows[0]
    assert {q_row["negative_1"], q_row["negative_2"]} == {"other", "far"}
    assert stats.corpus_size == 4  # the duplicate "p" is one document


def test_random_sampling_is_seeded_and_stays_in_the_window():
    pairs = [(f"q{i}", f"d{i}") for i in range(40)]
    table = random_table([x for p in pairs for x in p], seed=5)
    model = TableEmbedder(table)
    r1, _ = mine_hard_negatives(model, pairs, num_negatives=2, range_max=6, sampling="random", seed=1, verbose=False)
    r2, _ = mine_hard_negatives(model, pairs, num_negatives=2, range_max=6, sampling="random", seed=1, verbose=False)
    assert r1 == r2
    top = brute_force(table, pairs, 6, range_max=6)
    for r in r1:
        assert {r["negative_1"], r["negative_2"]} <= set(top[r["anchor"]])


def test_stats_are_printed(capsys):
    pairs = [(f"q{i}", f"d{i}") for i in range(6)]
    mine_hard_negatives(TableEmbedder(random_table([x for p in pairs for x in p])), pairs, num_negatives=1)
    out = capsys.readouterr().out
    assert "hard-negative mining: 6 queries" in out and "queries without 1 negatives" in out


# -- bad input ------------------------------------------------------------------------------------------
def test_query_without_positive_is_a_clear_error():
    model = TableEmbedder(random_table(["a", "b", "c"]))
    with pytest.raises(DataError, match="no positive"):
        mine_hard_negatives(model, [{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": None}], verbose=False)
    with pytest.raises(DataError, match="pairs"):
        mine_hard_negatives(model, [{"anchor": "a"}, {"anchor": "c"}], verbose=False)


@pytest.mark.parametrize("bad", ["", "   ", 3, None])
def test_empty_or_non_string_texts_are_clear_errors(bad):
    model = TableEmbedder(random_table(["a", "b", "c", "d"]))
    with pytest.raises(DataError, match="row 1|corpus"):
        mine_hard_negatives(model, [("a", "b"), ("c", bad) if bad is not None else (bad, "d")], verbose=False)
    with pytest.raises(DataError, match=r"corpus\[1\]"):
        mine_hard_negatives(
            model, [("a", "b"), ("c", "d")], corpus=["d", bad if bad is not None else ""], verbose=False
        )


def test_corpus_smaller_than_num_negatives_is_a_clear_error():
    model = TableEmbedder(random_table(["a", "b", "c", "d"]))
    with pytest.raises(DataError, match="corpus has 2 distinct documents"):
        mine_hard_negatives(model, [("a", "b"), ("c", "d")], num_negatives=2, range_max=10, verbose=False)


def test_every_candidate_filtered_for_some_queries_is_reported_and_mining_continues():
    table = {"q1": [1, 0], "d1": [1, 0], "q2": [1, 0], "d2": [0.99, 0.14], "q3": [0, 1], "d3": [0.2, 0.98]}
    pairs = [("q1", "d1"), ("q2", "d2"), ("q3", "d3")]
    rows, stats = mine_hard_negatives(
        TableEmbedder(table), pairs, num_negatives=1, max_score=0.5, range_max=1, verbose=False
    )
    # within range_max=1, q1 and q2 see only each other's very close documents (> 0.5): all filtered
    assert stats.queries_short == 2 and stats.rows_dropped == 2
    assert [r["anchor"] for r in rows] == ["q3"]
    rows, stats = mine_hard_negatives(
        TableEmbedder(table), pairs, num_negatives=1, max_score=0.5, range_max=1, on_short="random", verbose=False
    )
    assert len(rows) == 3 and stats.filled_at_random == 2
    for r in rows:
        assert r["negative_1"] != r["positive"]


@pytest.mark.parametrize(
    "opts",
    [
        {"num_negatives": 0},
        {"sampling": "best"},
        {"range_min": 5, "range_max": 5},
        {"relative_margin": -0.1},
        {"on_short": "pad"},
    ],
)
def test_bad_options_are_config_errors(opts):
    model = TableEmbedder(random_table(["a", "b", "c", "d"]))
    with pytest.raises(ConfigError):
        mine_hard_negatives(model, [("a", "b"), ("c", "d")], verbose=False, **opts)


def test_bf16_precision_embeds_under_autocast_and_finds_the_same_negatives(minilm_path):
    seen = []

    class Recorder(TableEmbedder):
        def __call__(self, items):
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return super().__call__(items)

    table = random_table(["a", "b", "c", "d", "e", "f"])
    rows32, _ = mine_hard_negatives(Recorder(table), [("a", "b"), ("c", "d"), ("e", "f")], verbose=False)
    assert seen and not any(on for on, _ in seen)
    seen.clear()
    rows16, _ = mine_hard_negatives(
        Recorder(table), [("a", "b"), ("c", "d"), ("e", "f")], verbose=False, precision="bf16"
    )
    assert seen and all(on and dtype == torch.bfloat16 for on, dtype in seen)
    assert rows16 == rows32
    # a real model: the same negatives on distinct topics; embeddings close to float32's
    from anycl.api import build_model

    model = build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess"]
    pairs = [(f"tell me about {t}", f"an article about {t}") for t in topics]
    a, s32 = mine_hard_negatives(model, pairs, verbose=False)
    b, s16 = mine_hard_negatives(model, pairs, verbose=False, precision="bf16")
    assert [r["negative_1"] for r in a] == [r["negative_1"] for r in b]
    assert abs(s32.mean_positive_score - s16.mean_positive_score) < 0.02
    with pytest.raises(ConfigError, match="precision must be one of"):
        mine_hard_negatives(model, pairs, verbose=False, precision="fp8")

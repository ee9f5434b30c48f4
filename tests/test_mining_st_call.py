"""sentence-transformers' call of mine_hard_negatives: ``mine_hard_negatives(dataset, model, ...)`` with its
argument names returns what sentence-transformers' own function returns on the same model and data (each
output format, prompts, margins, several positives per query); its names in anycl's order; the refused ones."""

import pytest

from anycl.errors import ConfigError
from anycl.mining import mine_hard_negatives
from anycl.mining.st_call import ST_MINING_ARGS, ST_POSITIONAL

TOPICS = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess", "tea", "maps"]


@pytest.fixture(scope="module")
def st(tiny_text_encoder):
    return tiny_text_encoder.st


def _data(several_positives=False):
    import datasets

    queries = [f"what do we know about {t}?" for t in TOPICS]
    answers = [f"facts on {t}, part one" for t in TOPICS]
    if several_positives:
        queries += queries[:3]
        answers += [f"more on {t}" for t in TOPICS[:3]]
    return datasets.Dataset.from_dict({"question": queries, "answer": answers})


def _st_mine(*args, **kw):
    from sentence_transformers.util import mine_hard_negatives as st_mine

    return st_mine(*args, verbose=False, **kw)


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-pair", "labeled-list"])
@pytest.mark.parametrize("several_positives", [False, True])
def test_each_output_format_equals_sentence_transformers(st, fmt, several_positives):
    import datasets

    data = _data(several_positives)
    ours = mine_hard_negatives(data, st, num_negatives=2, output_format=fmt, verbose=False)
    assert isinstance(ours, datasets.Dataset)
    theirs = _st_mine(data, st, num_negatives=2, output_format=fmt)
    assert ours.column_names == theirs.column_names
    assert ours.to_list() == theirs.to_list()


def test_defaults_prompts_margins_and_sampling_equal_sentence_transformers(st):
    data = _data()
    assert mine_hard_negatives(data, st, verbose=False).to_list() == _st_mine(data, st).to_list()  # 3, triplets
    kw = dict(
        num_negatives=2,
        relative_margin=0.05,
        sampling_strategy="top",
        query_prompt="query: ",
        corpus_prompt="passage: ",
        output_format="n-tuple",
    )
    ours = mine_hard_negatives(data, st, verbose=False, **kw)
    assert ours.to_list() == _st_mine(data, st, **kw).to_list()
    assert not any(v.startswith(("query: ", "passage: ")) for row in ours.to_list() for v in row.values())
    corpus = [f"a note on {t}" for t in ("dogs", "lakes", "wheels")]
    ours = mine_hard_negatives(data, st, "question", corpus=corpus, num_negatives=1, range_min=1, verbose=False)
    assert ours.to_list() == _st_mine(data, st, "question", corpus=corpus, num_negatives=1, range_min=1).to_list()
    ours = mine_hard_negatives(data, st, "question", "answer", corpus, None, 0, 50, None, None, None, None, 2)
    assert (
        ours.to_list()
        == _st_mine(data, st, "question", "answer", corpus, None, 0, 50, None, None, None, None, 2).to_list()
    )


def test_range_min_with_a_margin_warns_that_the_rules_run_in_another_order(st, caplog):
    mine_hard_negatives(_data(), st, num_negatives=1, range_min=1, relative_margin=0.05, verbose=False)
    assert "anycl skips the range_min best candidates first" in caplog.text


def test_sentence_transformers_names_in_anycl_order_give_rows_and_stats(st):
    rows = [{"anchor": f"what do we know about {t}?", "positive": f"facts on {t}"} for t in TOPICS]
    plain, stats = mine_hard_negatives(st, rows, num_negatives=2, verbose=False)
    named, _ = mine_hard_negatives(st, rows, num_negatives=2, sampling_strategy="top", use_faiss=False, verbose=False)
    assert named == plain and list(plain[0]) == ["anchor", "positive", "negative_1", "negative_2"]
    assert stats.negatives_taken == 2 * len(rows)
    triplets, _ = mine_hard_negatives(st, rows, num_negatives=2, output_format="triplet", verbose=False)
    assert len(triplets) == 2 * len(rows) and list(triplets[0]) == ["anchor", "positive", "negative"]
    # a list in sentence-transformers' order comes back as a list (a Dataset only when given one)
    assert isinstance(mine_hard_negatives(rows, st, num_negatives=1, verbose=False), list)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"min_score": 0.2}, "min_score is refused: anycl has no floor"),
        ({"cross_encoder": object()}, "guide=<model>"),
        ({"include_positives": True}, "include_positives=True is not supported"),
        ({"output_scores": True}, "output_scores=True is not supported"),
        ({"use_multi_process": True}, "accelerate launch"),
        ({"output_format": "pairs"}, "output_format must be one of"),
        ({"query_prompt_name": "nowhere"}, "the model has no prompt of that name"),
    ],
)
def test_refused_sentence_transformers_arguments_say_why(st, kw, match):
    with pytest.raises(ConfigError, match=match):
        mine_hard_negatives(_data(), st, verbose=False, **kw)


def test_the_table_names_real_arguments_of_sentence_transformers():
    import inspect

    from sentence_transformers.util import mine_hard_negatives as st_mine

    st_args = list(inspect.signature(st_mine).parameters)
    assert list(ST_POSITIONAL) == st_args[2:]
    assert set(ST_MINING_ARGS) == set(st_args) - {"dataset", "model", "corpus"}

"""MiningOptions: one validated record of a mining pass's options, taken by mine_hard_negatives,
mine_negative_ids, the mined sampler and ``anycl mine``."""

import dataclasses
import inspect

import numpy as np
import pytest
from mining_toys import MINING_CASES, ItemEmbedder, pairs_and_corpus

from anycl.cli.parser import build_parser
from anycl.errors import ConfigError
from anycl.mining.mine import mine_hard_negatives, mine_negative_ids
from anycl.mining.options import OPTION_NAMES, MiningOptions
from anycl.sampling.mined import MinedNegativeSampler

# The keyword defaults of mine_hard_negatives / mine_negative_ids as their signatures spelled them before
# the options became one record (anycl 35dc9a8): the record must keep every one of them.
SIGNATURE_DEFAULTS = {
    "num_negatives": 1,
    "range_min": 0,
    "range_max": 100,
    "max_score": None,
    "absolute_margin": None,
    "relative_margin": None,
    "sampling": "top",
    "batch_size": 64,
    "chunk_size": 1024,
    "seed": 0,
    "on_short": "drop",
    "precision": "fp32",
    "show_progress": False,
    "guide_margin": 0.0,
    "guide_margin_strategy": "absolute",
    "backend": "exact",
    "faiss_options": None,
    "cache_dir": None,
    "cache_keep": None,
    "shard": True,
}


def test_defaults_are_the_functions_former_keyword_defaults():
    assert dataclasses.asdict(MiningOptions()) == SIGNATURE_DEFAULTS
    assert MiningOptions.resolve() == MiningOptions()


def test_the_cli_mine_defaults_are_the_options_defaults():
    args = build_parser().parse_args(["mine", "model", "pairs.csv", "-o", "out.csv"])
    d = MiningOptions()
    for name in ("num_negatives", "range_min", "range_max", "max_score", "absolute_margin", "relative_margin"):
        assert getattr(args, name) == getattr(d, name), name
    for name in ("sampling", "batch_size", "seed", "on_short", "precision", "backend", "cache_dir"):
        assert getattr(args, name) == getattr(d, name), name


def test_the_docstring_of_mine_hard_negatives_names_every_option():
    doc = inspect.getdoc(mine_hard_negatives)
    assert all(f"``{name}``" in doc for name in OPTION_NAMES)


BAD = [
    ("num_negatives", 0),
    ("num_negatives", 1.5),
    ("num_negatives", True),
    ("range_min", -1),
    ("range_min", "0"),
    ("range_max", 0),
    ("batch_size", 0),
    ("chunk_size", 0),
    ("chunk_size", 2.0),
    ("seed", 1.5),
    ("sampling", "best"),
    ("on_short", "pad"),
    ("precision", "fp8"),
    ("max_score", "high"),
    ("absolute_margin", -0.1),
    ("relative_margin", -0.1),
    ("relative_margin", "5%"),
    ("guide_margin", "wide"),
    ("guide_margin_strategy", "percent"),
    ("backend", "annoy"),
]


@pytest.mark.parametrize("name, value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_each_bad_value_is_a_config_error_naming_the_option(name, value):
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        MiningOptions(**{name: value})
    model = ItemEmbedder()
    with pytest.raises(ConfigError, match=f"^{name} must be"):  # by keyword, before anything is embedded
        mine_hard_negatives(model, [("a", "b"), ("c", "d")], verbose=False, **{name: value})
    assert model.seen == 0
    with pytest.raises(ConfigError, match=f"^{name} must be"):  # a variant of a good record is checked too
        dataclasses.replace(MiningOptions(), **{name: value})


def test_bad_faiss_options_and_a_window_too_small_are_config_errors_naming_them():
    with pytest.raises(ConfigError, match="faiss_options must be a dict"):  # said before faiss is imported
        MiningOptions(backend="faiss", faiss_options="ivf")
    with pytest.raises(ConfigError, match=r"range_min=5\.\.range_max=6 holds fewer than num_negatives=2"):
        MiningOptions(num_negatives=2, range_min=5, range_max=6)


def test_unknown_options_and_a_wrong_options_argument_are_config_errors():
    with pytest.raises(
        ConfigError, match=r"unknown mining option\(s\) \['num_negative'\] \(did you mean 'num_negatives'"
    ):
        mine_hard_negatives(ItemEmbedder(), [("a", "b")], num_negative=2)
    with pytest.raises(ConfigError, match="options must be a MiningOptions, got dict"):
        mine_hard_negatives(ItemEmbedder(), [("a", "b")], options={"num_negatives": 2})
    with pytest.raises(TypeError):  # the options after corpus are keyword-only
        mine_hard_negatives(ItemEmbedder(), [("a", "b")], None, 2)


def test_the_record_is_frozen_and_stores_plain_ints():
    o = MiningOptions(num_negatives=np.int64(2), seed=np.int32(7))
    assert type(o.num_negatives) is int and type(o.seed) is int and o.num_negatives == 2 and o.seed == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.num_negatives = 3  # type: ignore[misc]


@pytest.mark.parametrize("case", sorted(MINING_CASES))
def test_options_and_keywords_mine_the_same_negatives(case):
    pairs, corpus = pairs_and_corpus()
    kw = MINING_CASES[case]
    by_keywords, s1 = mine_hard_negatives(ItemEmbedder(), pairs, corpus, verbose=False, **kw)
    by_options, s2 = mine_hard_negatives(ItemEmbedder(), pairs, corpus, verbose=False, options=MiningOptions(**kw))
    assert by_keywords == by_options and len(by_keywords) > 0
    timeless = {"embed_seconds", "search_seconds", "queries_per_s"}
    assert {k: v for k, v in s1.as_dict().items() if k not in timeless} == {
        k: v for k, v in s2.as_dict().items() if k not in timeless
    }
    anchors, positives = [a for a, _ in pairs], [p for _, p in pairs]
    ids_kw = mine_negative_ids(ItemEmbedder(), anchors, positives, corpus, **kw)[:2]
    ids_opt = mine_negative_ids(ItemEmbedder(), anchors, positives, corpus, options=MiningOptions(**kw))[:2]
    assert ids_kw == ids_opt
    rows_from_ids = [
        {"anchor": a, "positive": p, **{f"negative_{j + 1}": ids_kw[1][d] for j, d in enumerate(negs)}}
        for a, p, negs in zip(anchors, positives, ids_kw[0])
        if negs is not None
    ]
    assert rows_from_ids == by_keywords


def test_a_keyword_given_with_options_overrides_that_option_only():
    pairs, corpus = pairs_and_corpus()
    base = MiningOptions(num_negatives=2, range_min=2, range_max=12, sampling="random")
    for seed in (1, 2):
        mixed, _ = mine_hard_negatives(ItemEmbedder(), pairs, corpus, verbose=False, options=base, seed=seed)
        spelled, _ = mine_hard_negatives(
            ItemEmbedder(),
            pairs,
            corpus,
            verbose=False,
            num_negatives=2,
            range_min=2,
            range_max=12,
            sampling="random",
            seed=seed,
        )
        assert mixed == spelled
    assert base.seed == 0  # the record given is not changed


def test_the_mined_sampler_keeps_its_settings_as_options_and_checks_them_at_once():
    s = MinedNegativeSampler(num_negatives=2, mining_batch_size=8, chunk_size=16, verbose=False)
    o = s.mining_options
    assert (o.num_negatives, o.range_max, o.relative_margin, o.on_short, o.cache_keep) == (2, 50, 0.05, "random", 4)
    assert (o.batch_size, o.chunk_size, o.precision) == (8, 16, "fp32")
    for name, value in [("range_max", 0), ("absolute_margin", -1.0), ("sampling", "best")]:
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            MinedNegativeSampler(**{name: value})
    with pytest.raises(ConfigError, match="^batch_size must be"):
        MinedNegativeSampler(mining_batch_size=0)
    with pytest.raises(ConfigError, match="^precision must be"):
        MinedNegativeSampler(mining_precision="fp8")
    with pytest.raises(ConfigError, match="^guide_margin_strategy must be"):
        MinedNegativeSampler(guide_margin_strategy="percent")

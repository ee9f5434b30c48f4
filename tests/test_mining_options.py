"""MiningOptions: one validated record of a mining pass's options, taken by mine_hard_negatives,
mine_negative_ids, the mined sampler and ``anycl mine``."""

import dataclasses
import inspect

import numpy as np
import pytest
from mining_toys import MINING_CASES, ItemEmbedder, pairs_and_corpus

from anycl.cli.parser import build_parser
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.mining.mine import mine_hard_negatives, mine_negative_ids
from anycl.mining.options import OPTION_NAMES, MiningOptions
from anycl.sampling.mined import MinedNegativeSampler

# The keyword defaults of mine_hard_negatives / mine_negative_ids as their signatures spelled them before
# the options became one record (anycl 35dc9a8): the record must keep every one of them, but for the engine
# (issue 34): ``precision`` (then "fp32") is now not given and ``engine="auto"`` decides, bf16 where the CPU has it.
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
    "precision": None,
    "show_progress": False,
    "guide_margin": 0.0,
    "guide_margin_strategy": "absolute",
    "backend": "exact",
    "faiss_options": None,
    "cache_dir": None,
    "cache_keep": None,
    "shard": True,
    "engine": "auto",
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
    assert (o.batch_size, o.chunk_size, o.precision, o.engine) == (8, 16, None, "auto")  # fit sets the precision
    for name, value in [("range_max", 0), ("absolute_margin", -1.0), ("sampling", "best")]:
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            MinedNegativeSampler(**{name: value})
    with pytest.raises(ConfigError, match="^batch_size must be"):
        MinedNegativeSampler(mining_batch_size=0)
    with pytest.raises(ConfigError, match="^precision must be"):
        MinedNegativeSampler(mining_precision="fp8")
    with pytest.raises(ConfigError, match="^guide_margin_strategy must be"):
        MinedNegativeSampler(guide_margin_strategy="percent")


# every option the mined sampler took by name before it took a MiningOptions (anycl 0.1's signature), with a
# value other than its default, and the record's field that holds it
SAMPLER_OPTIONS_01 = {
    "num_negatives": ("num_negatives", 3),
    "range_min": ("range_min", 2),
    "range_max": ("range_max", 40),
    "max_score": ("max_score", 0.9),
    "absolute_margin": ("absolute_margin", 0.01),
    "relative_margin": ("relative_margin", 0.1),
    "sampling": ("sampling", "random"),
    "mining_batch_size": ("batch_size", 16),
    "chunk_size": ("chunk_size", 32),
    "mining_precision": ("precision", "bf16"),
    "guide_margin": ("guide_margin", 0.2),
    "guide_margin_strategy": ("guide_margin_strategy", "relative"),
    "backend": ("backend", "exact"),
    "faiss_options": ("faiss_options", {}),
    "cache_dir": ("cache_dir", "emb"),
    "cache_keep": ("cache_keep", 2),
}


def test_every_sampler_option_of_before_lands_in_the_record_and_a_record_can_be_given():
    for name, (field, value) in SAMPLER_OPTIONS_01.items():
        s = MinedNegativeSampler(**{name: value}, verbose=False)
        assert getattr(s.mining_options, field) == value, name
    s = MinedNegativeSampler(**{n: v for n, (_, v) in SAMPLER_OPTIONS_01.items()}, seed=7, shuffle=False)
    assert (s.seed, s.shuffle, s.num_negatives) == (7, False, 3)  # the in-batch options and seed stay the sampler's
    record = MiningOptions(num_negatives=2, range_max=30, on_short="drop")
    given = MinedNegativeSampler(record, num_negatives=4, refresh_every=5)
    assert given.mining_options == dataclasses.replace(record, num_negatives=4, on_short="random")  # every row trains
    # a record given is used as it is: fit does not set its precision, its engine ("auto") decides
    assert given.mining_precision == "auto" and given.refresh_every == 5


def test_unset_precision_and_guide_margin_follow_fit_and_given_ones_stay():
    s = MinedNegativeSampler()
    assert s.mining_precision is None  # fit sets it from mixed_precision
    s.mining_precision = "bf16"
    s.set_guide(object(), margin=0.3, strategy="relative")
    o = s.mining_options
    assert (o.precision, o.guide_margin, o.guide_margin_strategy) == ("bf16", 0.3, "relative")
    kept = MinedNegativeSampler(mining_precision="fp32", guide_margin=0.1, guide_margin_strategy=None)
    kept.set_guide(object(), margin=0.3, strategy="relative")
    o = kept.mining_options
    assert (kept.mining_precision, o.guide_margin, o.guide_margin_strategy) == ("fp32", 0.1, "relative")


def test_a_sampler_pass_mines_what_mine_negative_ids_mines_with_the_same_options():
    pairs, corpus = pairs_and_corpus()
    rows = to_rows([{"anchor": a, "positive": p} for a, p in pairs])
    record = MiningOptions(num_negatives=2, range_min=1, range_max=12, sampling="random", relative_margin=0.05)
    by_record = MinedNegativeSampler(record, corpus=corpus, seed=3, verbose=False)
    by_name = MinedNegativeSampler(
        num_negatives=2, range_min=1, range_max=12, sampling="random", corpus=corpus, seed=3, verbose=False
    )
    for s in (by_record, by_name):
        s.refresh(ItemEmbedder(), rows, 4)
    per_row, docs, _ = mine_negative_ids(
        ItemEmbedder(),
        [a for a, _ in pairs],
        [p for _, p in pairs],
        corpus,
        options=record,
        on_short="random",
        seed=3 * 1_000_003 + 4,
    )
    expected = [[docs[j] for j in ids] for ids in per_row]
    assert by_record.negatives == by_name.negatives == expected


@pytest.mark.parametrize(
    "options, match",
    [
        ({"batch_size": 8}, "mining_batch_size"),
        ({"precision": "bf16"}, "mining_precision"),
        ({"on_short": "drop"}, "sets on_short itself"),
        ({"show_progress": True}, "sets show_progress itself"),
        ({"mining_options": {"num_negatives": 2}}, "^mining_options must be a MiningOptions"),
    ],
)
def test_mined_sampler_options_that_are_not_its_own_are_clear_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        MinedNegativeSampler(**options)

"""Text adapter: span dropout / token cutoff, truncation count, length-grouped batching."""

import logging

import pytest
import torch
from toy_modality import ToyEncoder  # registers the toyvec modality

import anycl
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.sampling.factory import InBatchSampler, length_grouped, row_lengths


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_default_view_is_the_text_itself():
    a = anycl.adapters.get("text")
    assert a.augment("one two three", gen()) == "one two three"


def test_span_dropout_deletes_one_contiguous_span_of_the_right_length():
    a = anycl.adapters.get("text", span_dropout=0.3)
    words = [f"w{i}" for i in range(10)]
    seen = set()
    for s in range(40):
        out = a.augment(" ".join(words), gen(s)).split()
        assert len(out) == 7
        # the kept words are the original with one contiguous run of 3 removed
        start = next(i for i, w in enumerate(words) if i >= len(out) or out[i] != w)
        assert out == words[:start] + words[start + 3 :]
        seen.add(start)
    assert len(seen) > 3  # the span moves
    assert a.augment("single", gen()) == "single"


def test_token_cutoff_drops_words_at_the_given_rate_and_keeps_one():
    a = anycl.adapters.get("text", token_cutoff=0.25)
    words = " ".join(f"w{i}" for i in range(400))
    out = a.augment(words, gen(1)).split()
    assert 250 < len(out) < 350 and set(out) <= set(words.split())
    assert out == [w for w in words.split() if w in set(out)]  # order kept
    b = anycl.adapters.get("text", token_cutoff=0.99)
    for s in range(20):
        assert len(b.augment("a b c", gen(s)).split()) >= 1


def test_augmentation_is_deterministic_under_a_seed():
    a = anycl.adapters.get("text", span_dropout=0.2, token_cutoff=0.1)
    t = "the quick brown fox jumps over the lazy dog again and again"
    assert a.augment(t, gen(7)) == a.augment(t, gen(7))


@pytest.mark.parametrize(
    "opts", [{"span_dropout": 1.0}, {"token_cutoff": -0.1}, {"span_dropout": "x"}, {"max_seq_length": 1}]
)
def test_bad_adapter_options(opts):
    with pytest.raises(ConfigError):
        anycl.adapters.get("text", **opts)


def test_truncation_is_counted_and_reported_once(minilm_path, caplog):
    model = anycl.api.build_model(
        {"anchor": "text", "positive": "text", "negative": "text"},
        model=minilm_path,
        adapter_options={"max_seq_length": 8},
    )
    a = model.tower("anchor").adapter
    long = "word " * 40
    with caplog.at_level(logging.WARNING, logger="anycl"):
        a.collate([long, "short", long])
        a.collate([long])
    assert a.truncated == 3 and a.tokenized == 4
    assert sum("truncated" in r.message for r in caplog.records) == 1
    assert a.collate(["short"])["input_ids"].shape[1] <= 8


def test_length_grouping_sorts_within_windows_and_keeps_every_row():
    rows = to_rows([{"anchor": "x" * n, "positive": "y"} for n in range(1, 41)])
    order = list(range(40))
    out = length_grouped(order, row_lengths(rows, {}), 10)
    assert sorted(out) == order
    for s in range(0, 40, 10):
        lens = [len(rows[i]["anchor"]) for i in out[s : s + 10]]
        assert lens == sorted(lens, reverse=True)
    sampler = InBatchSampler(seed=1, group_by_length=4)
    sampler.set_key_functions({"anchor": str, "positive": str})
    batches = sampler.plan(to_rows([{"anchor": "x" * n, "positive": f"p{n}"} for n in range(1, 65)]), 0, 4)
    assert sorted(i for b in batches for i in b) == list(range(64))
    spread = [max(b) - min(b) for b in batches]  # similar lengths share a batch
    assert sum(spread) / len(spread) < 16
    with pytest.raises(ConfigError):
        InBatchSampler(group_by_length=0)


def test_row_length_is_its_longest_side_in_tokens_capped_at_max_seq_length(minilm_path):
    import anycl.adapters as adapters
    from anycl.api import build_model

    model = build_model(
        {"anchor": "text", "positive": "text", "negative": "text"},
        model=minilm_path,
        adapter_options={"max_seq_length": 16},
    )
    ad = model.tower("anchor").adapter
    texts = ["one", "two words", "word " * 40]
    # the tokenizer's own count ([CLS] + word pieces + [SEP]), capped at 16
    expected = [min(len(ad._st.tokenizer(t)["input_ids"]), 16) for t in texts]
    assert ad.lengths(texts) == expected == [3, 4, 16]
    rows = to_rows(
        [{"anchor": "word " * 40, "positive": "short"}, {"anchor": "a b", "positive": "a few more words here"}]
    )
    assert row_lengths(rows, {"anchor": ad.lengths, "positive": ad.lengths}) == [16, 7]
    assert row_lengths(rows, {}) == [200, 21]  # without an adapter: characters of the longest string
    assert adapters.Adapter().lengths(["abc", 5]) == [3, 0]


def test_unsupervised_text_trains_with_span_dropout(minilm_path):
    sents = [f"sentence number {i} about topic {i % 5} and more words" for i in range(16)]
    model = anycl.fit(
        sents,
        modality="text",
        model=minilm_path,
        batch_size=8,
        max_steps=1,
        progress=False,
        adapter_options={"span_dropout": 0.2, "max_seq_length": 16},
        log_with=None,
    )
    assert model.encode(sents[:2]).shape == (2, 384)
    assert anycl.load is not None


def test_encode_sorts_texts_by_length_internally_but_returns_them_in_the_given_order(minilm_path):
    from anycl.api import build_model

    model = build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    texts = [
        "short",
        "a much longer sentence about rivers and the sea",
        "mid length text",
        "x",
        "another fairly long sentence, this one about engines",
    ]
    together = model.encode(texts, batch_size=2)
    one_by_one = torch.cat([model.encode([t]) for t in texts])
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)


def test_export_sentence_transformers_refuses_a_non_text_tower(tmp_path):
    toy = anycl.model.build_model({s: "toyvec" for s in ("anchor", "positive")}, head=None)
    with pytest.raises(ConfigError, match="is not a sentence-transformers model; only text towers export"):
        toy.export_sentence_transformers(str(tmp_path / "toy"))
    assert not (tmp_path / "toy").exists()
    with pytest.raises(TypeError, match="the text adapter needs a sentence-transformers encoder"):
        anycl.model.build_model({s: "text" for s in ("anchor", "positive")}, encoder=ToyEncoder(), head=None)

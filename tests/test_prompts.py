"""Prompts: keyed by column in fit, applied to training batches, stored with the model, used by encode,
encode_query/encode_document, evaluation and mining, and written into the sentence-transformers folder
(checked against ``SentenceTransformer(path).encode(..., prompt_name=...)``)."""

import pytest
import torch

import anycl
from anycl.api import build_model
from anycl.data.batching import BatchBuilder
from anycl.errors import ConfigError

PROMPTS = {"anchor": "query: ", "positive": "passage: "}
TEXTS = ["how do I sort a list?", "rivers flow to the sea", "bread is baked from flour"]


@pytest.fixture(scope="module")
def trained(minilm_path, tmp_path_factory):
    pairs = [
        {
            "anchor": f"what do we know about {t}? ({i})",
            "positive": f"facts on {t}, part {i}",
            "negative": f"nothing on {t} at all, part {i}",
        }
        for i in range(2)
        for t in ["cats", "rivers", "engines", "bread", "stars", "violins"]
    ]
    model = anycl.fit(
        pairs,
        modality="text",
        model=minilm_path,
        batch_size=6,
        max_steps=1,
        prompts=PROMPTS,
        progress=False,
        log_with=None,
        collapse_watch=False,
        adapter_options={"max_seq_length": 32},
    )
    path = tmp_path_factory.mktemp("m")
    model.save(str(path / "model"))
    model.export_sentence_transformers(str(path / "st"))
    return model, path, pairs


def test_prompts_are_stored_and_used_by_encode(trained):
    model, path, _ = trained
    assert model.prompts == PROMPTS
    torch.testing.assert_close(
        model.encode(TEXTS, prompt_name="anchor"), model.encode(["query: " + t for t in TEXTS]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(model.encode_query(TEXTS), model.encode(TEXTS, prompt="query: "))
    torch.testing.assert_close(model.encode_document(TEXTS), model.encode(TEXTS, prompt="passage: "))
    # prompt= wins over prompt_name= (sentence-transformers' rule)
    torch.testing.assert_close(
        model.encode(TEXTS, prompt_name="anchor", prompt="passage: "), model.encode(TEXTS, prompt="passage: ")
    )
    loaded = anycl.load(str(path / "model"))
    assert loaded.prompts == PROMPTS
    torch.testing.assert_close(loaded.encode_query(TEXTS), model.encode_query(TEXTS))


def test_exported_folder_gives_the_same_vectors_in_sentence_transformers(trained):
    from sentence_transformers import SentenceTransformer

    model, path, _ = trained
    for folder in (path / "st", path / "model" / "towers" / "text"):
        st = SentenceTransformer(str(folder), device="cpu")
        assert st.prompts["anchor"] == "query: " and st.prompts["positive"] == "passage: "
        for name in ("anchor", "positive"):
            theirs = st.encode(TEXTS, prompt_name=name, normalize_embeddings=True, convert_to_tensor=True)
            torch.testing.assert_close(model.encode(TEXTS, prompt_name=name), theirs, atol=1e-5, rtol=0)
        # ST's encode_query / encode_document use the anchor's / positive's prompt, as anycl's do
        torch.testing.assert_close(
            model.encode_query(TEXTS),
            st.encode_query(TEXTS, normalize_embeddings=True, convert_to_tensor=True),
            atol=1e-5,
            rtol=0,
        )
        torch.testing.assert_close(
            model.encode_document(TEXTS),
            st.encode_document(TEXTS, normalize_embeddings=True, convert_to_tensor=True),
            atol=1e-5,
            rtol=0,
        )


def test_training_batches_carry_each_sides_prompt(trained):
    model, _, pairs = trained
    adapters = {s: model.tower(s).adapter for s in ("anchor", "positive", "negative")}
    builder = BatchBuilder(adapters, ["negative"], prompts=model.prompts)
    batch = builder.build(pairs[:3], torch.Generator().manual_seed(0))
    tok = model.tower("anchor").encoder.st.tokenizer
    decoded = {s: tok.batch_decode(batch[s]["input_ids"], skip_special_tokens=True) for s in adapters}
    assert all(t.startswith("query :") for t in decoded["anchor"])
    assert all(t.startswith("passage :") for t in decoded["positive"])
    assert all(t.startswith("passage :") for t in decoded["negative"])  # negatives take the positive's
    own = BatchBuilder(adapters, ["negative"], prompts={**model.prompts, "negative": ""})
    neg = own.build(pairs[:3], torch.Generator().manual_seed(0))["negative"]
    assert tok.batch_decode(neg["input_ids"], skip_special_tokens=True)[0].startswith("nothing")


def test_evaluation_and_mining_use_the_prompts(trained):
    from anycl.data.inputs import to_rows
    from anycl.evaluation import RetrievalEvaluator, retrieval_metrics
    from anycl.model.embed import embedder

    model, _, pairs = trained
    ev = RetrievalEvaluator.from_pairs(to_rows(pairs))
    ref = retrieval_metrics(
        model.encode(ev.queries, prompt="query: "), model.encode(ev.corpus, prompt="passage: "), ev.relevant
    )
    seen = []
    encode = model.encode
    model.encode = lambda items, **kw: seen.append(kw.get("prompt")) or encode(items, **kw)
    try:
        assert ev(model) == pytest.approx(ref)
    finally:
        del model.encode
    assert seen == ["query: ", "passage: "]  # queries with the anchor's prompt, the corpus with the positive's
    torch.testing.assert_close(embedder(model, "anchor", 8)(TEXTS), model.encode(TEXTS, prompt="query: "))
    torch.testing.assert_close(embedder(model, "positive", 8)(TEXTS), model.encode(TEXTS, prompt="passage: "))


def test_include_prompt_false_excludes_prompt_tokens_from_pooling(minilm_path, text_pairs, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        batch_size=8,
        max_steps=1,
        prompts=PROMPTS,
        include_prompt=False,
        progress=False,
        log_with=None,
        collapse_watch=False,
    )
    model.export_sentence_transformers(str(tmp_path / "st"))
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    pooling = [m for m in st if type(m).__name__ == "Pooling"][0]
    assert pooling.include_prompt is False
    theirs = st.encode(TEXTS, prompt_name="anchor", normalize_embeddings=True, convert_to_tensor=True)
    ours = model.encode(TEXTS, prompt_name="anchor")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # independent reference: mean of the token embeddings after [CLS] + the prompt's tokens, normalised
    st_inner = model.tower("anchor").encoder.st
    feats = st_inner.preprocess([TEXTS[0]], prompt="query: ")
    n_prompt = feats["prompt_length"]
    with torch.no_grad():
        tokens = st_inner[0]({k: v for k, v in feats.items() if torch.is_tensor(v)})["token_embeddings"][0]
    ref = torch.nn.functional.normalize(tokens[n_prompt:].mean(0), dim=-1)
    torch.testing.assert_close(ours[0], ref, atol=1e-5, rtol=0)
    assert not torch.allclose(ours[0], model.encode(["query: " + TEXTS[0]])[0], atol=1e-3)


def test_prompts_keyed_by_the_datasets_own_column_names(minilm_path):
    rows = [{"q": f"question {i} on topic {i % 3}", "d": f"answer {i} on topic {i % 3}"} for i in range(8)]
    model = anycl.fit(
        rows,
        modality="text",
        model=minilm_path,
        columns={"anchor": "q", "positive": "d"},
        prompts={"q": "query: ", "d": "passage: "},
        batch_size=4,
        max_steps=1,
        progress=False,
        log_with=None,
        collapse_watch=False,
    )
    assert model.prompts == PROMPTS


@pytest.mark.parametrize(
    "prompts,match",
    [
        ({"question": "query: "}, "does not have"),
        ({"negative": "x: "}, "does not have"),  # no negative column
        ({"anchor": 3}, "prompt texts"),
        (["query: "], "mapping"),
    ],
)
def test_bad_prompts_are_clear_errors(text_pairs, minilm_path, prompts, match):
    with pytest.raises(ConfigError, match=match):
        anycl.fit(text_pairs, modality="text", model=minilm_path, prompts=prompts)


def test_prompts_on_a_non_text_side_and_non_bool_include_prompt_are_errors(minilm_path, text_pairs):
    from toy_modality import toy_rows  # noqa: F401  (registers "toyvec")

    rows = [{"anchor": r["anchor"], "positive": r["positive"]} for r in toy_rows(8)]
    with pytest.raises(ConfigError, match="text only"):
        anycl.fit(rows, modality="toyvec", prompts={"anchor": "query: "})
    with pytest.raises(ConfigError, match="include_prompt"):
        anycl.fit(text_pairs, modality="text", model=minilm_path, prompts=PROMPTS, include_prompt="no")
    model = build_model({"anchor": "toyvec", "positive": "toyvec"})
    with pytest.raises(ConfigError, match="text only"):
        model.encode([r["anchor"] for r in rows], prompt="query: ")

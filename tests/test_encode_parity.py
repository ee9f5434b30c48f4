"""``encode`` with sentence-transformers' options, checked against sentence-transformers itself (the
same weights loaded by ``SentenceTransformer``, its ``quantize_embeddings`` and similarity functions)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anycl.api import build_model
from anycl.errors import ConfigError

TEXTS = [
    "how do I sort a list?",
    "sorted(iterable) returns a new sorted list",
    "rivers flow to the sea",
    "a short one",
    "bread is baked from flour, water and yeast in an oven",
]


@pytest.fixture(scope="module")
def model(minilm_path):
    return build_model({s: "text" for s in ("anchor", "positive", "negative")}, model=minilm_path)


@pytest.fixture(scope="module")
def st(model, tmp_path_factory):
    from sentence_transformers import SentenceTransformer

    path = tmp_path_factory.mktemp("st")
    model.export_sentence_transformers(str(path))
    return SentenceTransformer(str(path), device="cpu")


def test_encode_matches_sentence_transformers(model, st):
    ours = model.encode(TEXTS, batch_size=2)
    theirs = st.encode(TEXTS, normalize_embeddings=True, convert_to_tensor=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    raw = model.encode(TEXTS, normalize_embeddings=False)
    torch.testing.assert_close(raw, st.encode(TEXTS, convert_to_tensor=True), atol=1e-5, rtol=0)


def test_output_types_and_single_string(model):
    t = model.encode(TEXTS)
    assert torch.is_tensor(t) and t.shape == (5, 384)
    a = model.encode(TEXTS, convert_to_numpy=True)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and np.allclose(a, t.numpy())
    assert isinstance(model.encode(TEXTS, convert_to_tensor=False), np.ndarray)  # ST: numpy is the default there
    listed = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 5 and listed[0].shape == (384,)
    one = model.encode(TEXTS[0])
    assert one.shape == (384,)
    torch.testing.assert_close(one, t[0])
    assert model.encode(TEXTS[0], convert_to_numpy=True).shape == (384,)


def test_aliases_and_batch_size(model):
    a = model.encode(TEXTS, normalize_embeddings=False, show_progress_bar=False, batch_size=1)
    b = model.encode(TEXTS, normalize=False, batch_size=64)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # MiniLM ends in a Normalize module; a truncated prefix shows whether encode normalises
    short = model.encode(TEXTS, normalize_embeddings=False, truncate_dim=64)
    assert (short.norm(dim=-1) < 0.99).all()
    torch.testing.assert_close(model.encode(TEXTS, truncate_dim=64).norm(dim=-1), torch.ones(5))
    with pytest.raises(ConfigError, match="disagree"):
        model.encode(TEXTS, normalize=False, normalize_embeddings=True)
    with pytest.raises(ConfigError, match="batch_size"):
        model.encode(TEXTS, batch_size=0)


def test_truncate_dim_matches_sentence_transformers(model, st):
    ours = model.encode(TEXTS, truncate_dim=64)
    assert ours.shape == (5, 64)
    full = model.encode(TEXTS, normalize=False)
    torch.testing.assert_close(ours, F.normalize(full[:, :64], dim=-1))  # the prefix, re-normalised
    theirs = st.encode(TEXTS, truncate_dim=64, normalize_embeddings=True, convert_to_tensor=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    model.truncate_dim = 128
    try:
        assert model.encode(TEXTS).shape == (5, 128)
        assert model.get_sentence_embedding_dimension() == 128
    finally:
        model.truncate_dim = None
    assert model.get_sentence_embedding_dimension() == st.get_embedding_dimension() == 384


@pytest.mark.parametrize("bad", [385, 0, -1, 2.5])
def test_truncate_dim_out_of_range_is_an_error(model, bad):
    with pytest.raises(ConfigError, match="truncate_dim"):
        model.encode(TEXTS, truncate_dim=bad)


@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "binary", "ubinary"])
def test_precision_matches_sentence_transformers_quantize(model, precision):
    from sentence_transformers import quantize_embeddings as st_quantize

    floats = model.encode(TEXTS, convert_to_numpy=True)
    ours = model.encode(TEXTS, precision=precision, convert_to_numpy=True)
    theirs = st_quantize(floats, precision=precision)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    # the same with ranges from calibration embeddings, and with explicit ranges (queries quantised
    # with a corpus's code book)
    # (ST quantises the floats of the same encode call: a batch of other texts pads to another length, and on some
    # CPUs (AMX) the float32 kernels then round the last bit differently, which can move an int8 code by one)
    cal = model.encode(TEXTS[::-1] + ["more text for the calibration set"], convert_to_numpy=True)
    floats = model.encode(TEXTS[:2], convert_to_numpy=True)
    ours = model.encode(TEXTS[:2], precision=precision, calibration_embeddings=cal, convert_to_numpy=True)
    np.testing.assert_array_equal(ours, st_quantize(floats, precision=precision, calibration_embeddings=cal))
    ranges = np.vstack([cal.min(0), cal.max(0)])
    floats = model.encode(TEXTS[1], convert_to_numpy=True)
    ours = model.encode(TEXTS[1], precision=precision, quantization_ranges=ranges, convert_to_numpy=True)
    np.testing.assert_array_equal(ours, st_quantize(floats[None], precision=precision, ranges=ranges)[0])


def test_precision_via_sentence_transformers_encode(model, st):
    """ST's own encode(precision=...) of the exported folder: binary codes agree bit for bit."""
    ours = model.encode(TEXTS, precision="ubinary", convert_to_numpy=True)
    theirs = st.encode(TEXTS, precision="ubinary", normalize_embeddings=True)
    np.testing.assert_array_equal(ours, theirs)


def test_unknown_precision_and_single_item_int8_are_errors(model):
    with pytest.raises(ConfigError, match="precision must be one of"):
        model.encode(TEXTS, precision="int4")
    from anycl.errors import DataError

    with pytest.raises(DataError, match="at least 2 embeddings"):
        model.encode(TEXTS[0], precision="int8")


@pytest.mark.parametrize("fn", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_matches_sentence_transformers(model, st, fn):
    a = model.encode(TEXTS[:2], normalize=False)
    b = model.encode(TEXTS[2:], normalize=False)
    model.similarity_fn_name = fn
    st.similarity_fn_name = fn
    try:
        ours = model.similarity(a, b)
        torch.testing.assert_close(ours, st.similarity(a, b), atol=1e-4, rtol=1e-5)
        assert ours.shape == (2, 3)
        assert model.similarity(a[0], b).shape == (1, 3)
    finally:
        model.similarity_fn_name = "cosine"
        st.similarity_fn_name = "cosine"
    with pytest.raises(ConfigError, match="similarity_fn_name"):
        model.similarity_fn_name = "jaccard"


def test_similarity_fn_name_is_saved(model, tmp_path):
    import anycl

    model.similarity_fn_name = "dot"
    try:
        model.save(str(tmp_path / "m"))
    finally:
        model.similarity_fn_name = "cosine"
    assert anycl.load(str(tmp_path / "m")).similarity_fn_name == "dot"


def test_max_seq_length_property(model, st):
    assert model.max_seq_length == st.max_seq_length == 256
    long_text = " ".join(["word"] * 300)
    model.max_seq_length = 16
    try:
        st.max_seq_length = 16
        torch.testing.assert_close(
            model.encode([long_text]),
            st.encode([long_text], normalize_embeddings=True, convert_to_tensor=True),
            atol=1e-5,
            rtol=0,
        )
        assert model.tower("anchor").adapter.config()["max_seq_length"] == 16  # saved with the model
    finally:
        model.max_seq_length = 256
        st.max_seq_length = 256
    with pytest.raises(ConfigError, match="max_seq_length"):
        model.max_seq_length = 1


def test_encode_query_and_document_without_prompts_equal_encode(model):
    torch.testing.assert_close(model.encode_query(TEXTS), model.encode(TEXTS))
    torch.testing.assert_close(model.encode_document(TEXTS, truncate_dim=32), model.encode(TEXTS, truncate_dim=32))


def test_prompt_arguments(model):
    with_prompt = model.encode(TEXTS, prompt="query: ")
    torch.testing.assert_close(with_prompt, model.encode(["query: " + t for t in TEXTS]), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="prompt_name 'anchor'"):
        model.encode(TEXTS, prompt_name="anchor")  # this model has no prompts


@pytest.mark.parametrize("fn", ["dot", "manhattan"])
def test_similarity_function_survives_save_and_export(model, fn, tmp_path):
    """The similarity function set on the model is the one sentence-transformers loads from the export and
    from the saved folder's ``towers/text``, and the one ``anycl.load`` gives back."""
    from sentence_transformers import SentenceTransformer

    import anycl

    model.similarity_fn_name = fn
    try:
        exported = model.export_sentence_transformers(str(tmp_path / "st"))
        model.save(str(tmp_path / "m"))
    finally:
        model.similarity_fn_name = "cosine"
    a, b = model.encode(TEXTS[:2]), model.encode(TEXTS[2:])
    loaded = anycl.load(str(tmp_path / "m"))
    assert loaded.similarity_fn_name == fn
    want = loaded.similarity(a, b)
    for folder in (exported, str(tmp_path / "m" / "towers" / "text")):
        st = SentenceTransformer(folder, device="cpu")
        assert st.similarity_fn_name == fn
        torch.testing.assert_close(st.similarity(a, b), want, atol=1e-4, rtol=1e-5)
    # and back to the default: a later export says cosine again
    again = SentenceTransformer(model.export_sentence_transformers(str(tmp_path / "st2")), device="cpu")
    assert again.similarity_fn_name == "cosine"


def test_empty_texts_encode_as_in_sentence_transformers(model, st):
    """An empty (or blank) text has an embedding, as sentence-transformers gives it (training data still
    refuses empty texts, tests/test_core_data.py); a non-string is still an error naming the item."""
    from anycl.errors import DataError

    texts = ["", "rivers flow to the sea", " "]
    ours = model.encode(texts)
    torch.testing.assert_close(
        ours, st.encode(texts, normalize_embeddings=True, convert_to_tensor=True), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(model.encode(""), ours[0])
    with pytest.raises(DataError, match="item 1 must be a string"):
        model.encode(["a", None])

"""A SentenceTransformer object as anycl's text encoder (issue 31 item 5): ``model=st`` and ``encoder=st`` with any
modules (a Dense layer, a custom pooling class, StaticEmbedding), trained in place, saved, reloaded, exported."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import anycl
from anycl.errors import ConfigError

TEXTS = ["a cat sleeps on the mat", "rivers flow to the sea", "the engine needs oil", ""]


def _rows():
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins"]
    return [{"anchor": f"what about {t}? {i}", "positive": f"facts on {t}, {i}"} for i in range(3) for t in topics]


def _fit(**kw):
    return anycl.fit(_rows(), modality="text", max_steps=2, batch_size=4, lr=1e-3, progress=False, log_with=None, **kw)


@pytest.fixture
def small_st(tiny_text_encoder):
    """A fresh one-layer MiniLM SentenceTransformer (Transformer, Pooling, Normalize)."""
    st = copy.deepcopy(tiny_text_encoder.st)
    st[0].auto_model.config.num_hidden_layers = 1  # as the fixture cut it: the saved config says so
    return st


def _static_st(minilm_path, dim=16):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.from_file(f"{minilm_path}/tokenizer.json")
    return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=dim)], device="cpu")


@pytest.mark.parametrize("how", ["model", "encoder"])
def test_a_sentence_transformer_object_is_trained_in_place(small_st, how, tmp_path):
    before = {k: v.clone() for k, v in small_st.state_dict().items()}
    model = _fit(**{how: small_st})
    assert model.towers["text"].encoder.st is small_st  # the object given, not a copy
    changed = [k for k, v in small_st.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the SentenceTransformer passed in was not trained"
    # the object is the model: its own encode gives anycl's (normalised) embeddings
    np.testing.assert_allclose(small_st.encode(TEXTS), model.encode(TEXTS).numpy(), atol=1e-5)
    model.save(str(tmp_path / "m"))
    back = anycl.load(str(tmp_path / "m"))
    np.testing.assert_allclose(back.encode(TEXTS).numpy(), model.encode(TEXTS).numpy(), atol=1e-6)


def test_model_and_encoder_objects_together_are_refused(small_st):
    with pytest.raises(ConfigError, match="both model= and encoder= give the text tower's encoder"):
        _fit(model=small_st, encoder=copy.deepcopy(small_st))


def test_a_dense_module_trains_saves_and_loads_in_sentence_transformers(small_st, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    st = SentenceTransformer(modules=[small_st[0], small_st[1], Dense(384, 64)], device="cpu")
    model = _fit(model=st)
    assert model.encode(TEXTS).shape == (4, 64)
    model.save(str(tmp_path / "m"))
    np.testing.assert_allclose(
        anycl.load(str(tmp_path / "m")).encode(TEXTS).numpy(), model.encode(TEXTS).numpy(), atol=1e-6
    )
    plain = SentenceTransformer(str(tmp_path / "m" / "towers" / "text"), device="cpu")
    got = torch.nn.functional.normalize(torch.tensor(plain.encode(TEXTS)), dim=-1)
    np.testing.assert_allclose(got.numpy(), model.encode(TEXTS).numpy(), atol=1e-5)


class MaxPool(nn.Module):
    """A user's own pooling module (not a sentence-transformers class): max over the tokens."""

    def forward(self, features):
        mask = features["attention_mask"].unsqueeze(-1).bool()
        emb = features["token_embeddings"].masked_fill(~mask, -1e4).max(1).values
        return {**features, "sentence_embedding": emb}

    def get_sentence_embedding_dimension(self):
        return 384

    def save(self, path, *args, **kwargs):
        pass

    @classmethod
    def load(cls, *args, **kwargs):
        return cls()


def test_a_custom_module_trains_and_reloads_with_the_module_given(small_st, tmp_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(modules=[small_st[0], MaxPool()], device="cpu")
    model = _fit(encoder=st)
    model.save(str(tmp_path / "m"))
    # anycl does not run a class it does not know from a folder: a clear error says how to load it
    with pytest.raises(ConfigError, match=r"is not a sentence-transformers module class.*encoders=\{'text'"):
        anycl.load(str(tmp_path / "m"))
    # the user builds the model in their own code from the folder's parts (no trust_remote_code) and passes it
    from sentence_transformers.sentence_transformer.modules import Transformer

    own = SentenceTransformer(modules=[Transformer(str(tmp_path / "m" / "towers" / "text")), MaxPool()], device="cpu")
    back = anycl.load(str(tmp_path / "m"), encoders={"text": own})
    np.testing.assert_allclose(back.encode(TEXTS).numpy(), model.encode(TEXTS).numpy(), atol=1e-5)


def test_static_embedding_trains_saves_and_exports_to_onnx(minilm_path, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    st = _static_st(minilm_path)
    assert st.max_seq_length == float("inf")  # what the length grouping used to crash on
    before = st[0].embedding.weight.detach().clone()
    model = _fit(model=st)  # the default sampler groups rows by token length
    assert not torch.equal(st[0].embedding.weight, before)
    emb = model.encode(TEXTS)
    assert emb.shape == (4, 16) and torch.isfinite(emb).all()
    model.save(str(tmp_path / "m"))
    np.testing.assert_allclose(anycl.load(str(tmp_path / "m")).encode(TEXTS).numpy(), emb.numpy(), atol=1e-6)

    onnx_path = model.export_onnx(str(tmp_path / "onnx"))
    feats = st.preprocess(TEXTS)
    session = ort.InferenceSession(onnx_path)
    names = [i.name for i in session.get_inputs()]
    assert sorted(names) == ["input_ids", "offsets"]
    got = session.run(None, {n: feats[n].numpy() for n in names})[0]
    np.testing.assert_allclose(got, emb.numpy(), atol=1e-5)
    three = st.preprocess(TEXTS[:3])  # another batch size and token count: the axes are dynamic
    got3 = session.run(None, {n: three[n].numpy() for n in names})[0]
    np.testing.assert_allclose(got3, emb[:3].numpy(), atol=1e-5)

"""anycl.model.quantization against sentence-transformers' ``quantize_embeddings`` (the same arrays) and the
scoring vectors against Hamming distance / integer dot products written out directly."""

import numpy as np
import pytest
import torch

from anycl.errors import ConfigError, DataError
from anycl.model.quantization import PRECISIONS, quantization_ranges, quantize_embeddings, scoring_vectors


@pytest.fixture(scope="module")
def emb():
    g = np.random.default_rng(0)
    x = g.normal(size=(50, 20)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_equals_sentence_transformers(emb, precision):
    from sentence_transformers import quantize_embeddings as st_quantize

    for kwargs in ({}, {"calibration_embeddings": emb[::-1][:30]}, {"ranges": quantization_ranges(emb[10:])}):
        ours = quantize_embeddings(emb[:12], precision, **kwargs)
        theirs = st_quantize(emb[:12], precision=precision, **kwargs)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        quantize_embeddings(torch.from_numpy(emb), precision), st_quantize(emb, precision=precision)
    )


def test_scoring_vectors_rank_like_the_codes(emb):
    q, c = emb[:5], emb[5:]
    ranges = quantization_ranges(c)
    # int8: dot products of the integer codes; uint8 is the same codes shifted by 128
    qi, ci = quantize_embeddings(q, "int8", ranges=ranges), quantize_embeddings(c, "int8", ranges=ranges)
    ref = qi.astype(np.int64) @ ci.astype(np.int64).T
    got = scoring_vectors(qi, "int8") @ scoring_vectors(ci, "int8").T
    np.testing.assert_allclose(got.numpy(), ref)
    qu, cu = quantize_embeddings(q, "uint8", ranges=ranges), quantize_embeddings(c, "uint8", ranges=ranges)
    np.testing.assert_allclose((scoring_vectors(qu, "uint8") @ scoring_vectors(cu, "uint8").T).numpy(), ref)
    # binary: D - 2 * Hamming distance of the sign bits
    for p in ("binary", "ubinary"):
        qb, cb = quantize_embeddings(q, p), quantize_embeddings(c, p)
        hamming = ((q[:, None, :] > 0) != (c[None, :, :] > 0)).sum(-1)
        got = scoring_vectors(qb, p, dim=20) @ scoring_vectors(cb, p, dim=20).T
        np.testing.assert_allclose(got.numpy(), 20 - 2 * hamming)


def test_bad_inputs(emb):
    with pytest.raises(ConfigError, match="precision must be one of"):
        quantize_embeddings(emb, "int4")
    with pytest.raises(DataError, match="at least 2 embeddings"):
        quantize_embeddings(emb[:1], "int8")
    with pytest.raises(DataError, match="floating point"):
        quantize_embeddings(quantize_embeddings(emb, "int8"), "int8")
    with pytest.raises(DataError, match="ranges must have shape"):
        quantize_embeddings(emb, "uint8", ranges=np.zeros((2, 3)))

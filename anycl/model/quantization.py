"""Quantised embeddings: float32 → int8 / uint8 (scalar, calibrated) or binary / ubinary (one bit).

The encodings are those of sentence-transformers' ``quantize_embeddings`` (tested to give the same
arrays), so vectors written by anycl can sit in an index built with ST, and the other way round:

- ``int8`` / ``uint8``: each dimension's calibration range ``[min, max]`` is cut into 256 buckets;
  a value becomes its bucket index ``floor((x - min) / step)`` clipped to 0..255 (``uint8``), or that
  index minus 128 (``int8``). The ranges come from ``ranges`` (2, D) when given, else from
  ``calibration_embeddings``, else from the embeddings themselves (then at least 2 are needed).
  Queries and documents must be quantised with the same ranges to be comparable: take the corpus's
  (:func:`quantization_ranges`) and pass them for the queries.
- ``binary`` / ``ubinary``: the sign bit of each dimension, 8 per byte (``numpy.packbits``);
  ``binary`` stores each byte minus 128 as int8, ``ubinary`` the byte itself as uint8.

:func:`scoring_vectors` turns quantised vectors back into float vectors whose dot products rank as
the quantised search would (int8 values; uint8 shifted by 128; bits as ±1, so the dot product is
``D - 2·hamming``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from anycl.errors import ConfigError, DataError

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def _as_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def quantization_ranges(calibration_embeddings) -> np.ndarray:
    """(2, D) float32: per-dimension minimum and maximum of ``calibration_embeddings`` (N, D), N >= 2."""
    cal = _as_numpy(calibration_embeddings)
    if cal.ndim != 2 or cal.shape[0] < 2:
        raise DataError(
            f"int8/uint8 calibration needs at least 2 embeddings as an (N, D) array, got shape "
            f"{tuple(cal.shape)}; pass ranges= or calibration_embeddings= from a representative set"
        )
    return np.vstack((cal.min(axis=0), cal.max(axis=0))).astype(np.float32)


def quantize_embeddings(embeddings, precision: str, ranges=None, calibration_embeddings=None) -> np.ndarray:
    """Quantise float embeddings (N, D) or (D,) to ``precision``; returns a NumPy array.

    Args:
        embeddings: float tensor or array.
        precision: ``"float32"``, ``"int8"``, ``"uint8"``, ``"binary"`` or ``"ubinary"``.
        ranges: (2, D) per-dimension [min, max] for int8/uint8.
        calibration_embeddings: (M, D) embeddings to take the ranges from (when ``ranges`` is None).
    """
    check_precision(precision)
    emb = _as_numpy(embeddings)
    if emb.dtype in (np.int8, np.uint8):
        raise DataError("embeddings to quantise must be floating point, not already int8/uint8")
    if precision == "float32":
        return emb.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = quantization_ranges(emb if calibration_embeddings is None else calibration_embeddings)
        ranges = _as_numpy(ranges).astype(np.float32)
        if ranges.shape != (2, emb.shape[-1]):
            raise DataError(f"ranges must have shape (2, {emb.shape[-1]}), got {tuple(ranges.shape)}")
        start = ranges[0]
        step = (ranges[1] - start) / 255
        step = np.where(step == 0, 1, step)
        buckets = np.clip(np.floor((emb - start) / step), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    return (bits - 128).astype(np.int8) if precision == "binary" else bits


def scoring_vectors(quantized, precision: str, dim: Optional[int] = None) -> torch.Tensor:
    """Float vectors whose dot products rank like a search over the quantised codes.

    float32: as they are; int8: the codes; uint8: codes − 128 (the int8 codes); binary/ubinary: the
    unpacked bits as ±1 (``dim``, the unpacked width, drops the padding bits of the last byte).
    """
    check_precision(precision)
    q = _as_numpy(quantized)
    if precision == "float32":
        return torch.from_numpy(q.astype(np.float32))
    if precision == "int8":
        return torch.from_numpy(q.astype(np.float32))
    if precision == "uint8":
        return torch.from_numpy(q.astype(np.float32) - 128.0)
    raw = (q.astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else q.astype(np.uint8)
    bits = np.unpackbits(raw, axis=-1)
    if dim is not None:
        bits = bits[..., :dim]
    return torch.from_numpy(bits.astype(np.float32) * 2.0 - 1.0)

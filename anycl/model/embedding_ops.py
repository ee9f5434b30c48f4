"""What ``ContrastiveModel.encode`` does after the encoder: truncation, normalisation, quantisation,
output type; and the similarity functions behind ``model.similarity``.

The options follow sentence-transformers' ``encode`` (``truncate_dim``, ``normalize_embeddings``,
``precision``, ``convert_to_numpy`` / ``convert_to_tensor``) so that code written for it runs here.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from anycl.errors import ConfigError

from .quantization import check_precision, quantize_embeddings

SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")


def check_truncate_dim(truncate_dim: Optional[int], width: Optional[int]) -> Optional[int]:
    if truncate_dim is None:
        return None
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int) or truncate_dim < 1:
        raise ConfigError(f"truncate_dim must be a positive int, got {truncate_dim!r}")
    if width is not None and truncate_dim > width:
        raise ConfigError(f"truncate_dim={truncate_dim} is larger than the model's embedding width {width}")
    return truncate_dim


def resolve_alias(anycl_value: Any, anycl_default: Any, st_value: Any, anycl_name: str, st_name: str) -> Any:
    """An option given under anycl's name or sentence-transformers' (not both, unless they agree)."""
    if st_value is None:
        return anycl_value
    if anycl_value != anycl_default and anycl_value != st_value:
        raise ConfigError(f"{anycl_name}={anycl_value!r} and {st_name}={st_value!r} disagree; give one of them")
    return st_value


def finish(
    emb: torch.Tensor,
    *,
    normalize: bool,
    truncate_dim: Optional[int],
    precision: str,
    quantization_ranges=None,
    calibration_embeddings=None,
    convert_to_numpy: Optional[bool] = None,
    convert_to_tensor: Optional[bool] = None,
    single: bool = False,
):
    """(N, D) float32 encoder output → what ``encode`` returns.

    Truncation comes first, then L2 normalisation (so a truncated embedding is re-normalised), then
    quantisation (ranges from ``quantization_ranges``, else ``calibration_embeddings``, else these
    embeddings). Output: a tensor by default (anycl's convention), a NumPy array with
    ``convert_to_numpy=True``, a list of 1-D tensors when both conversions are ``False`` (as
    sentence-transformers); one vector for a single input.
    """
    check_precision(precision)
    if truncate_dim is not None:
        emb = emb[:, :truncate_dim]
    if normalize:
        emb = F.normalize(emb, dim=-1)
    out: Any = emb
    if precision != "float32":
        cal = calibration_embeddings
        if cal is not None and truncate_dim is not None and np.shape(cal)[-1] != truncate_dim:
            cal = torch.as_tensor(np.asarray(cal))[:, :truncate_dim]
        out = torch.from_numpy(
            quantize_embeddings(emb, precision, ranges=quantization_ranges, calibration_embeddings=cal)
        )
    if convert_to_tensor or (convert_to_tensor is None and convert_to_numpy is None):
        result: Any = out  # anycl's default: a tensor
    elif convert_to_numpy or convert_to_numpy is None:  # convert_to_tensor=False alone: NumPy, as ST
        result = out.numpy()
    else:  # convert_to_numpy=False: a list of vectors, as ST
        result = list(out)
    if single:
        return result[0]
    return result


def similarity(a, b, fn: str = "cosine") -> torch.Tensor:
    """(N, M) similarity of every row of ``a`` with every row of ``b`` (1-D inputs count as one row).

    ``cosine`` and ``dot`` as usual; ``euclidean`` and ``manhattan`` are *negative* distances, so that
    higher is more similar for every function (sentence-transformers' convention).
    """
    if fn not in SIMILARITY_FUNCTIONS:
        raise ConfigError(f"similarity_fn_name must be one of {list(SIMILARITY_FUNCTIONS)}, got {fn!r}")
    a, b = (_as_2d(x) for x in (a, b))
    if a.shape[-1] != b.shape[-1]:
        raise ConfigError(f"cannot compare embeddings of widths {a.shape[-1]} and {b.shape[-1]}")
    if fn == "cosine":
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    if fn == "dot":
        return a @ b.T
    return -torch.cdist(a, b, p=2.0 if fn == "euclidean" else 1.0)


def _as_2d(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    return t.unsqueeze(0) if t.dim() == 1 else t

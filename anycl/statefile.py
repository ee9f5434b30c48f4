"""State written without pickle: nested Python data as a JSON file plus its tensors in a safetensors file.

``save_state(obj, folder, name)`` writes ``name.json`` (the structure) and, when there are tensors or
NumPy arrays, ``name.safetensors``; ``load_state(folder, name)`` rebuilds the same object. Supported:
``None``, ``bool``, ``int``, ``float`` (NaN/inf included), ``str``, ``list``, ``tuple``, ``dict`` (any of
these as keys, so an optimiser state's integer keys stay integers), ``torch.Tensor``, NumPy arrays and
NumPy scalars. Reading it executes nothing: JSON is data and safetensors is a header plus raw bytes.
Anything else (an arbitrary Python object) cannot be written and raises ``TypeError`` naming where it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch

FORMAT = "anycl-state"
# file suffixes that may hold pickles (which can run code when loaded): never read by anycl, refused where found
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".npy", ".npz")
FORMAT_VERSION = 1


class StateFileError(ValueError):
    """A state file that is missing, truncated, corrupt or not in this format (message names the file)."""


def _encode(obj: Any, tensors: Dict[str, torch.Tensor], where: str) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return {"f": repr(obj)}
        return obj
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"t": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"{where}: a NumPy array of Python objects cannot be saved without pickle")
        key = str(len(tensors))
        as_tensor = torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind == "u" else obj.copy())
        tensors[key] = as_tensor.contiguous()
        return {"np": key, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, where)
    if isinstance(obj, list):
        return {"l": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, tuple):
        return {"tu": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        return {
            "d": [[_encode(k, tensors, f"{where} key"), _encode(v, tensors, f"{where}[{k!r}]")] for k, v in obj.items()]
        }
    raise TypeError(
        f"{where} is a {type(obj).__name__}, which anycl cannot save without pickle; keep checkpoint "
        f"state to numbers, strings, lists, dicts, tensors and NumPy arrays"
    )


def _decode(node: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) >= 1:
        if "t" in node:
            return tensors[node["t"]]
        if "np" in node:
            return tensors[node["np"]].numpy().astype(np.dtype(node["dtype"]))
        if "f" in node:
            return float(node["f"])
        if "l" in node:
            return [_decode(v, tensors) for v in node["l"]]
        if "tu" in node:
            return tuple(_decode(v, tensors) for v in node["tu"])
        if "d" in node:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in node["d"]}
    raise ValueError(f"unexpected node {str(node)[:80]!r}")


def save_state(obj: Any, folder: os.PathLike, name: str) -> None:
    """Write ``obj`` as ``folder/name.json`` (+ ``folder/name.safetensors`` when it holds tensors)."""
    folder = Path(folder)
    tensors: Dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors, name)
    if tensors:
        safetensors.torch.save_file(tensors, str(folder / f"{name}.safetensors"))
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "tensors": len(tensors), "state": tree}
    with open(folder / f"{name}.json", "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())


def load_state(folder: os.PathLike, name: str, device: Any = "cpu") -> Any:
    """Read what :func:`save_state` wrote; raise :class:`StateFileError` naming a bad file."""
    folder = Path(folder)
    jpath = folder / f"{name}.json"
    if not jpath.is_file():
        raise StateFileError(f"{jpath} is missing")
    try:
        doc = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{jpath} is not valid JSON (truncated or corrupt?): {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateFileError(f"{jpath} is not an anycl state file")
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise StateFileError(f"{jpath} was written by a newer anycl; upgrade anycl")
    tensors: Dict[str, torch.Tensor] = {}
    if doc.get("tensors"):
        tpath = folder / f"{name}.safetensors"
        tensors = read_safetensors(tpath, device)
    try:
        return _decode(doc["state"], tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise StateFileError(f"{jpath} does not match {name}.safetensors (corrupt?): {exc}") from exc


def check_safetensors(path: os.PathLike) -> Tuple[int, int]:
    """Check that a safetensors file is complete (its header parses and its data fills the file):
    (header length, data length), or :class:`StateFileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise StateFileError(f"{path} is missing")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise StateFileError(f"{path} is truncated or corrupt ({size} bytes, shorter than a safetensors header)")
        n = int.from_bytes(head, "little")
        if n <= 0 or 8 + n > size:
            raise StateFileError(f"{path} is truncated or corrupt (its header claims {n} bytes; the file has {size})")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateFileError(f"{path} is corrupt: its safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise StateFileError(f"{path} is corrupt: its safetensors header is not a mapping")
    end = 0
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(spec["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise StateFileError(f"{path} is corrupt: bad entry {key!r} in its safetensors header") from exc
    if 8 + n + end > size:
        raise StateFileError(
            f"{path} is truncated: its tensors need {8 + n + end} bytes, the file has {size}; "
            f"it was cut short (an interrupted copy or a full disk?)"
        )
    return n, end


def read_safetensors(path: os.PathLike, device: Any = "cpu") -> Dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` after :func:`check_safetensors`; errors name the file."""
    check_safetensors(path)
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except Exception as exc:  # the deserialiser's message does not say which file
        raise StateFileError(f"{path} cannot be read (corrupt?): {exc}") from exc

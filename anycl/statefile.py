"""State written without pickle: nested Python data as a JSON file plus its tensors in a safetensors file.

``save_state(obj, folder, name)`` writes ``name.json`` (the structure) and, when there are tensors or
NumPy arrays, ``name.safetensors``; ``load_state(folder, name)`` rebuilds the same object. Supported:
``None``, ``bool``, ``int``, ``float`` (NaN/inf included), ``str``, ``list``, ``tuple``, ``dict`` (any of
these as keys, so an optimiser state's integer keys stay integers), ``torch.Tensor``, NumPy arrays and
NumPy scalars. Reading it executes nothing: JSON is data and safetensors is a header plus raw bytes.
Anything else (an arbitrary Python object) cannot be written and raises ``TypeError`` naming where it is.

Reading is bounded (:mod:`anycl.reading`): only regular files inside the folder are opened, the JSON up to
``MAX_STATE_JSON_BYTES``, a safetensors header up to ``MAX_HEADER_BYTES`` (refused before it is read) and a
safetensors file only when its data fills the file as its header says and the disk holds it (not a sparse file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch

from .errors import AnyclError
from .reading import (
    MAX_HEADER_BYTES,
    MAX_STATE_JSON_BYTES,
    SPARSE_MIN_WEIGHTS_BYTES,
    check_not_sparse,
    open_regular,
    parse_json,
    read_json,
)

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "anycl-state"
# file suffixes that may hold pickles (which can run code when loaded): never read by anycl, refused where found
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".npy", ".npz")
FORMAT_VERSION = 1


class StateFileError(AnyclError):
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
            dtype = np.dtype(node["dtype"])
            if dtype.kind not in "biufc" or dtype.shape != () or dtype.itemsize > 16:  # no object or sub-array types
                raise ValueError(f"unexpected NumPy dtype {node['dtype']!r}")
            return tensors[node["np"]].numpy().astype(dtype)
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
    if not os.path.lexists(jpath):
        raise StateFileError(f"{jpath} is missing")
    doc = read_json(jpath, MAX_STATE_JSON_BYTES, root=folder, error=StateFileError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateFileError(f"{jpath} is not an anycl state file")
    version = doc.get("format_version", 0)
    if not isinstance(version, int):
        raise StateFileError(f"{jpath} is corrupt: its format_version is {version!r}, not a number")
    if version > FORMAT_VERSION:
        raise StateFileError(f"{jpath} was written by a newer anycl; upgrade anycl")
    tensors: Dict[str, torch.Tensor] = {}
    if doc.get("tensors"):
        tpath = folder / f"{name}.safetensors"
        tensors = read_safetensors(tpath, device, root=folder)
    try:
        return _decode(doc["state"], tensors)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise StateFileError(f"{jpath} does not match {name}.safetensors (corrupt?): {exc}") from exc
    except RecursionError:
        raise StateFileError(f"{jpath} is not a file anycl wrote: its state is nested too deeply to read") from None


def _read_header(path: Path, root: Optional[PathLike]) -> Tuple[int, Any, int]:
    """(header length, parsed header, file size) of a safetensors file; nothing past the header is read."""
    if not os.path.lexists(path):
        raise StateFileError(f"{path} is missing")
    with os.fdopen(open_regular(path, root, StateFileError), "rb") as f:
        st = os.fstat(f.fileno())
        size = st.st_size
        head = f.read(8)
        if len(head) < 8:
            raise StateFileError(f"{path} is truncated or corrupt ({size} bytes, shorter than a safetensors header)")
        n = int.from_bytes(head, "little")
        if n <= 0 or 8 + n > size:
            raise StateFileError(f"{path} is truncated or corrupt (its header claims {n} bytes; the file has {size})")
        if n > MAX_HEADER_BYTES:
            raise StateFileError(
                f"{path} is not a safetensors file anycl reads: its header claims {n:,} bytes, more than the "
                f"{MAX_HEADER_BYTES:,} safetensors allows"
            )
        check_not_sparse(st, path, SPARSE_MIN_WEIGHTS_BYTES, StateFileError)
        header = parse_json(f.read(n), f"the safetensors header of {path}", StateFileError)
    if not isinstance(header, dict):
        raise StateFileError(f"{path} is corrupt: its safetensors header is not a mapping")
    return n, header, size


def _checked_header(path: Path, root: Optional[PathLike]) -> Tuple[int, Dict[str, Any], int]:
    n, header, size = _read_header(path, root)
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
    return n, header, end


def check_safetensors(path: PathLike, root: Optional[PathLike] = None) -> Tuple[int, int]:
    """Check that a safetensors file is complete (its header parses and its data fills the file):
    (header length, data length), or :class:`StateFileError` naming the file. Only a regular file (inside
    ``root`` when given) is opened, and a header longer than ``MAX_HEADER_BYTES`` is refused unread."""
    n, _, end = _checked_header(Path(path), root)
    return n, end


def tensor_shapes(path: PathLike, root: Optional[PathLike] = None) -> Dict[str, Tuple[int, ...]]:
    """The shape of each tensor of a complete safetensors file (see :func:`check_safetensors`), from its header
    alone: what loading it will allocate, known before anything is allocated."""
    _, header, _ = _checked_header(Path(path), root)
    shapes = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise StateFileError(f"{path} is corrupt: bad shape of {key!r} in its safetensors header")
        shapes[key] = tuple(shape)
    return shapes


def read_safetensors(path: PathLike, device: Any = "cpu", root: Optional[PathLike] = None) -> Dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` after :func:`check_safetensors`; errors name the file."""
    check_safetensors(path, root)
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except Exception as exc:  # the deserialiser's message does not say which file
        raise StateFileError(f"{path} cannot be read (corrupt?): {exc}") from exc

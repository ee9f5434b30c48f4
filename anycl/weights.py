"""A module's weights from a safetensors file, checked against the file's header before anything is allocated.

A model folder describes each module twice: its configuration (``anycl_config.json``: an encoder's widths, a
head's sizes) and its weights (a safetensors file, whose header lists every tensor's shape). Building the module
from the configuration first would allocate whatever the configuration asks for (a head of width 4e8 is 19 GB),
before the weights could disagree. Here the module is first built on PyTorch's ``meta`` device (shapes without
memory), its state dict compared key by key with the header, and only a module that matches is built for real
and given the weights: what anycl allocates is what the weights file holds.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from .errors import AnyclError, ConfigError
from .statefile import PathLike, StateFileError, read_safetensors, tensor_shapes

log = logging.getLogger("anycl")

Shapes = Mapping[str, Tuple[int, ...]]


def compare_shapes(module: nn.Module, shapes: Shapes, path: PathLike, described_by: str) -> None:
    """Raise ConfigError naming ``path`` unless ``module``'s state dict has exactly the keys and shapes ``shapes``."""
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing, unexpected = sorted(set(own) - set(shapes)), sorted(set(shapes) - set(own))
    if missing or unexpected:
        raise ConfigError(
            f"{os.fspath(path)} does not hold the weights {described_by} describes (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); the folder was altered or mixed from two models"
        )
    for key, shape in own.items():
        if tuple(shapes[key]) != shape:
            raise ConfigError(
                f"{os.fspath(path)} does not fit {described_by}: {key!r} is {list(shapes[key])} in the file but "
                f"{list(shape)} in the configuration; the folder was altered or mixed from two models"
            )


def build_checked(build: Callable[[], nn.Module], shapes: Shapes, path: PathLike, described_by: str) -> nn.Module:
    """``build()`` once on the meta device, compared with ``shapes`` (:func:`compare_shapes`), then for real."""
    try:
        with torch.device("meta"):
            ghost = build()
    except AnyclError:
        raise
    except Exception as exc:  # options it does not take, or a third-party module that needs memory to be built
        log.debug("cannot build %s on the meta device (%s); its shapes are checked after it is built", path, exc)
        try:
            module = build()
        except AnyclError:
            raise
        except Exception as exc:  # e.g. an option the module does not take (a TypeError)
            raise ConfigError(f"{described_by} cannot be built: {type(exc).__name__}: {exc}") from exc
        compare_shapes(module, shapes, path, described_by)
        return module
    compare_shapes(ghost, shapes, path, described_by)
    del ghost
    return build()


def load_weights(module: nn.Module, state: Dict[str, torch.Tensor], path: PathLike) -> None:
    """``module.load_state_dict(state)`` with torch's refusal (a key or a shape that differs) as ConfigError."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{os.fspath(path)} does not fit its module: {' '.join(str(exc).split())[:400]}") from exc


def load_checked(
    build: Callable[[], nn.Module],
    path: PathLike,
    described_by: str,
    prefix: str = "",
    root: Optional[PathLike] = None,
) -> nn.Module:
    """The module ``build()`` makes, with the weights of the safetensors file ``path`` (the tensors whose names
    start with ``prefix``, the prefix removed), built only once its shapes are found to match the file's header."""
    try:
        shapes = {k[len(prefix) :]: v for k, v in tensor_shapes(path, root).items() if k.startswith(prefix)}
        module = build_checked(build, shapes, path, described_by)
        state = read_safetensors(path, root=root)
    except StateFileError as exc:
        raise ConfigError(str(exc)) from exc
    load_weights(module, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, path)
    return module

"""Embeddings cached on disk, keyed by the model's state and each item's hash, so a re-run of mining (or
a resumed run) does not embed unchanged items again.

``mine_hard_negatives(..., cache_dir="emb-cache")`` (and ``sampler_options={"cache_dir": ...}``) pass
through :class:`EmbeddingCache`. Layout::

    cache_dir/<model key>/part-<id>.safetensors     keys (n, 2) int64, emb (n, D) float32

The **model key** hashes everything that decides an embedding: every parameter and buffer of the model
(names, dtypes, shapes, bytes), its configuration (an anycl model's ``config()``: adapters, prompts,
truncation; a sentence-transformers model's ``max_seq_length``, prompts, ``truncate_dim`` and its modules'
settings as its ``repr`` shows them, e.g. the pooling mode), the side's prompt and tower,
and the engine (``fp32`` / ``bf16`` for the torch engines). Any change to the weights gives another key, so
nothing computed before is reused.
An **item key** is a 128-bit hash of the text (bytes, arrays: their content; a path given to an anycl
image or audio model, an ``os.PathLike``, or an HF feature dict with a path: the path with the file's
size and modification time; a SentenceTransformer's or a callable's strings are hashed as texts).
Items of other types are embedded every time and not stored.

Each call writes the items it had to embed as new part files (at most ``PART_ROWS`` rows each), first
to a temporary name and then renamed (atomic: a killed run leaves no half-written part), so processes
of one run and later runs share the folder safely. A part that cannot be read (corrupt, truncated,
wrong shapes) is **rebuilt**: a warning names it, it is deleted, and its items are embedded again.
``keep``: how many model keys to keep in the folder (the most recently used; default all), so a
sampler that re-mines as the model trains does not fill the disk.

Embeddings of a model whose output for an item depends on its batch (padding in a transformer) may
differ from a fresh run's in the last bits (float rounding); with a model that embeds each item alone
the result is identical with and without the cache (tested).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union, cast

import numpy as np
import safetensors
import safetensors.torch
import torch

from anycl.errors import ConfigError
from anycl.files import check_parent
from anycl.model.embed import embed_all, is_anycl_model, model_engine
from anycl.model.engines import PRECISION_ENGINE

log = logging.getLogger("anycl")
PART_ROWS = 65536
FORMAT = "anycl-embed-cache-v1"


def _hash_state(h, state: Dict[str, torch.Tensor]) -> None:
    for name in sorted(state):
        t = state[name]
        if not torch.is_tensor(t):
            h.update(f"{name}={t!r};".encode())
            continue
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(state[name].shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def model_key(model, side: str, precision: str, state_hash: Optional[str] = None) -> str:
    """The hex key of everything that decides ``model``'s embeddings of ``side`` items (module docstring);
    ``state_hash``: :func:`state_hash` of the model when already computed."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{FORMAT}|{precision}|{type(model).__module__}.{type(model).__qualname__}|".encode())
    if is_anycl_model(model):
        tower = model.sides.get(side, model.sides.get("anchor"))
        conf = json.dumps(model.config(), sort_keys=True, default=str)
        h.update(f"tower={tower}|prompt={model.prompt_for(side)!r}|".encode() + conf.encode())
    elif hasattr(model, "encode"):  # sentence-transformers (or alike)
        extra = {
            k: getattr(model, k, None) for k in ("max_seq_length", "prompts", "default_prompt_name", "truncate_dim")
        }
        # the modules' settings that hold no parameter (pooling mode, normalisation) show in the repr
        extra["modules"] = repr(model)
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    h.update((state_hash or state_hash_of(model)).encode())
    return h.hexdigest()


def check_cacheable(model) -> None:
    """A ConfigError unless ``model``'s state can be hashed (callers check before embedding anything)."""
    if not hasattr(model, "state_dict"):
        raise ConfigError(
            f"cache_dir needs a model whose state can be hashed (an anycl model, a SentenceTransformer or a "
            f"torch.nn.Module); a {type(model).__name__} has no state_dict"
        )


def state_hash_of(model) -> str:
    """A hash of ``model``'s parameters and buffers (its ``state_dict``)."""
    check_cacheable(model)
    h = hashlib.blake2b(digest_size=16)
    _hash_state(h, model.state_dict())
    return h.hexdigest()


def item_digest(item: Any, paths: bool) -> Optional[bytes]:
    """16 bytes naming an item's content (module docstring), or None for an item that is not cached.
    ``paths``: strings are file paths (an image or audio model), not texts."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(item, dict) and item.get("path") and item.get("bytes") is None:
        item, paths = item["path"], True
    if isinstance(item, str):
        if paths:
            try:
                st = os.stat(item)
            except OSError:
                return None  # the embedder reports the missing file
            h.update(f"p|{item}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            h.update(b"s|" + item.encode("utf-8", "surrogatepass"))
    elif isinstance(item, (bytes, bytearray)):
        h.update(b"b|" + bytes(item))
    elif isinstance(item, os.PathLike):
        return item_digest(os.fspath(item), True)
    elif torch.is_tensor(item) or isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item.detach().cpu().numpy() if torch.is_tensor(item) else item)
        if arr.dtype == object:
            return None
        h.update(f"a|{arr.shape}|{arr.dtype}|".encode() + arr.tobytes())
    else:
        return None
    return h.digest()


class EmbeddingCache:
    """Embeddings on disk under ``folder`` (module docstring), for one mining pass; ``keep``: model keys
    kept (None: all), pruned by :meth:`finish`."""

    def __init__(self, folder: Union[str, os.PathLike], keep: Optional[int] = None):
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
            raise ConfigError(f"cache_keep must be an int >= 1 or None, got {keep!r}")
        check_parent(folder, "cache_dir")
        self.folder, self.keep = Path(folder), keep
        self.hits = self.misses = 0
        self._states: Dict[int, str] = {}  # id(model) -> state hash, computed once per pass
        self.used: List[str] = []
        self.started = time.time()

    def embed(self, model, items: Sequence[Any], side: str, batch_size: int, engine: str, bar=None) -> torch.Tensor:
        """``embed_all(model, items, side=side, ...)``, reusing stored embeddings of unchanged items (the key
        names the engine that computes them: its older precision name for the torch engines, ``fp32`` or
        ``bf16``, so caches written before the engines stay valid)."""
        if not len(items):
            return torch.zeros(0, 0)
        if id(model) not in self._states:
            self._states[id(model)] = state_hash_of(model)
        engine = model_engine(model, PRECISION_ENGINE.get(engine, engine))  # "fp32"/"bf16": the torch engines
        label = {"torch": "fp32", "torch-bf16": "bf16"}.get(engine, engine)
        key = model_key(model, side, label, self._states[id(model)])
        folder = self.folder / key
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        os.utime(folder, (now, now))  # recently used: kept by finish()
        if key not in self.used:
            self.used.append(key)
        paths = is_anycl_model(model) and not getattr(model.tower(side).adapter, "text_items", False)
        digests = [item_digest(x, paths) for x in items]
        wanted = {d: j for j, d in enumerate(digests) if d is not None}
        got, emb = self._lookup(folder, wanted)
        hit = set(got)
        missing = [j for j in range(len(items)) if j not in hit]
        self.hits += len(got)
        self.misses += len(missing)
        if bar is not None and got:
            bar.update(len(got))
        new = None
        if missing:
            new = embed_all(
                model, [items[j] for j in missing], side=side, batch_size=batch_size, bar=bar, engine=engine
            )
            store = [r for r, j in enumerate(missing) if digests[j] is not None]
            self._write(folder, [cast(bytes, digests[missing[r]]) for r in store], new[store])
        width = new.shape[1] if new is not None else emb.shape[1]
        out = torch.empty(len(items), width)
        if got:
            out[torch.tensor(got)] = emb
        if new is not None:
            out[torch.tensor(missing)] = new
        return out

    def finish(self) -> None:
        """With ``keep``: remove the least recently used model keys beyond ``keep`` (never one used by this
        pass or touched by any process since it began)."""
        if self.keep is None or not self.folder.is_dir():
            return
        old = []
        for p in self.folder.iterdir():
            try:
                if p.is_dir() and p.name not in self.used and p.stat().st_mtime < self.started:
                    old.append((p.stat().st_mtime, p))
            except FileNotFoundError:
                continue  # removed by another process meanwhile
        old.sort(reverse=True)
        for _, p in old[max(0, self.keep - len(self.used)) :]:
            shutil.rmtree(p, ignore_errors=True)

    # -- files -------------------------------------------------------------------------------------
    def _lookup(self, folder: Path, wanted: Dict[bytes, int]):
        """(item positions found, their (n, D) embeddings) from the part files under ``folder``."""
        got: List[int] = []
        chunks: List[torch.Tensor] = []
        for part in sorted(folder.glob("part-*.safetensors")):
            if not wanted:  # every item found (wanted loses the items found)
                break
            try:
                with safetensors.safe_open(str(part), framework="pt") as f:
                    keys, emb = f.get_tensor("keys"), f.get_tensor("emb")
                if keys.dim() != 2 or keys.shape[1] != 2 or keys.dtype != torch.int64:
                    raise ValueError(f"keys of shape {tuple(keys.shape)} and dtype {keys.dtype}")
                if emb.dim() != 2 or emb.shape[0] != keys.shape[0] or (chunks and emb.shape[1] != chunks[0].shape[1]):
                    raise ValueError(f"embeddings of shape {tuple(emb.shape)} for {keys.shape[0]} keys")
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            except Exception as e:  # noqa: BLE001  (any unreadable part is rebuilt)
                log.warning("embedding cache: %s cannot be read (%s); removed, its items are embedded again", part, e)
                part.unlink(missing_ok=True)
                continue
            raw = keys.numpy().tobytes()
            rows, pos = [], []
            for r in range(keys.shape[0]):
                j = wanted.pop(raw[16 * r : 16 * r + 16], None)
                if j is not None:
                    rows.append(r)
                    pos.append(j)
            if rows:
                got.extend(pos)
                chunks.append(emb[rows].float())
        return got, (torch.cat(chunks) if chunks else torch.zeros(0, 0))

    def _write(self, folder: Path, digests: List[bytes], emb: torch.Tensor) -> None:
        """New part files (at most ``PART_ROWS`` rows each), written under a temporary name and renamed."""
        keys = (
            np.frombuffer(b"".join(digests), dtype=np.int64).reshape(-1, 2) if digests else np.zeros((0, 2), np.int64)
        )
        for s in range(0, len(keys), PART_ROWS):
            name = uuid.uuid4().hex
            tmp, final = folder / f".tmp-{name}.safetensors", folder / f"part-{name}.safetensors"
            tensors = {
                "keys": torch.from_numpy(keys[s : s + PART_ROWS].copy()),
                "emb": emb[s : s + PART_ROWS].contiguous(),
            }
            try:
                safetensors.torch.save_file(tensors, str(tmp), metadata={"format": FORMAT})
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)


def embed_items(model, items: Sequence[Any], side: str, batch_size: int, engine: str, bar=None, cache=None):
    """(N, D) embeddings of ``items`` as :func:`anycl.model.embed.embed_all` makes them with ``engine``
    (:mod:`anycl.model.engines`; ``"fp32"`` / ``"bf16"``: the torch engines), through ``cache`` (an
    :class:`EmbeddingCache`) when given; no items: a (0, 0) tensor."""
    if not len(items):
        return torch.zeros(0, 0)
    if cache is not None:
        return cache.embed(model, items, side, batch_size, engine, bar)
    engine = PRECISION_ENGINE.get(engine, engine)
    return embed_all(model, list(items), side=side, batch_size=batch_size, bar=bar, engine=engine)

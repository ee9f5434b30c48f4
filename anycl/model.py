"""ContrastiveModel: one tower (adapter + encoder + optional projection head) per modality.

Sides (``anchor``, ``positive``, ``negative``) map to towers; when every side is the same modality
they share one tower (a siamese model), and with two modalities (image–text, audio–text) there are two.
``encode`` embeds raw items deterministically (evaluation views, no dropout), ``save`` writes
safetensors weights plus JSON files (no pickle; files get the process umask, overwrite keeps files anycl did
not write, see :meth:`ContrastiveModel.save`), :func:`load` rebuilds the model and refuses pickle files in
its tower folders and truncated weights, naming the file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .adapters.registry import get as get_adapter
from .batching import to_device
from .card import write_model_files
from .checkpoint import PICKLE_SUFFIXES
from .embedding_ops import SIMILARITY_FUNCTIONS, check_truncate_dim, finish, resolve_alias, similarity
from .errors import ConfigError, DataError
from .files import apply_umask, check_parent, replace_folder, reworded
from .lora import load_tower_adapter, save_tower
from .onnx_export import export_onnx
from .progress import phase_bar
from .prompts import check_prompt_map, prompt_for, st_prompts
from .quantization import check_precision
from .statefile import StateFileError, check_safetensors

FORMAT = "anycl-model"
FORMAT_VERSION = 1
CONFIG_FILE = "anycl_config.json"
HEADS_FILE = "heads.safetensors"


def projection_head(in_dim: int, out_dim: int = 128, hidden_dim: Optional[int] = None, layers: int = 2) -> nn.Module:
    """SimCLR-style MLP head: (Linear → BatchNorm → ReLU) × (layers − 1) → Linear."""
    hidden_dim = hidden_dim or in_dim
    mods: List[nn.Module] = []
    d = in_dim
    for _ in range(max(layers - 1, 0)):
        mods += [nn.Linear(d, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    head = nn.Sequential(*mods)
    head.anycl_spec = {"type": "mlp", "in_dim": in_dim, "out_dim": out_dim, "hidden_dim": hidden_dim, "layers": layers}
    return head


def build_head(spec: Optional[Dict[str, Any]]) -> Optional[nn.Module]:
    if not spec:
        return None
    if spec.get("type") == "mlp":
        return projection_head(spec["in_dim"], spec["out_dim"], spec.get("hidden_dim"), spec.get("layers", 2))
    if spec.get("type") == "linear":
        head = nn.Linear(spec["in_dim"], spec["out_dim"], bias=spec.get("bias", False))
        head.anycl_spec = dict(spec)
        return head
    raise ConfigError(f"unknown projection head type {spec.get('type')!r} in the model config")


class Tower(nn.Module):
    """Adapter + encoder (+ head) for one modality.

    ``encode_with_head``: whether :meth:`ContrastiveModel.encode` returns head outputs (a shared
    cross-modal space) or the encoder's representation (SimCLR's convention for downstream use).
    """

    def __init__(self, adapter, encoder: nn.Module, head: Optional[nn.Module] = None, encode_with_head: bool = False):
        super().__init__()
        self.adapter = adapter
        self.encoder = encoder
        self.head = head
        self.encode_with_head = bool(encode_with_head and head is not None)
        self.frozen: Optional[str] = None  # "all" or "encoder" once anycl.crossmodal.freeze ran
        adapter.attach(encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:  # frozen parts keep evaluation behaviour (no dropout, fixed BatchNorm statistics)
            self.encoder.eval()
            if self.frozen == "all" and self.head is not None:
                self.head.eval()
        return self

    @property
    def modality(self) -> str:
        return self.adapter.modality

    def forward(self, features: Any, train: bool = True, generator: Optional[torch.Generator] = None,
                use_head: bool = True) -> torch.Tensor:
        features = self.adapter.prepare(features, train=train, generator=generator)
        if self.frozen:  # a frozen encoder needs no autograd graph: less memory, faster steps
            with torch.no_grad():
                out = self.encoder(features)
        else:
            out = self.encoder(features)
        if out.dim() != 2:
            raise ValueError(
                f"the {self.modality} encoder must return (batch, dim) embeddings, got shape {tuple(out.shape)}"
            )
        if use_head and self.head is not None:
            out = self.head(out)
        return out


class ContrastiveModel(nn.Module):
    """A contrastive encoder model.

    Args:
        towers: modality name → :class:`Tower`.
        sides: side (``anchor``, ``positive``, ``negative``) → modality name.

    Training calls ``model(features_by_side)`` → embeddings by side. Users call :meth:`encode`.
    """

    def __init__(self, towers: Mapping[str, Tower], sides: Mapping[str, str], info: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.towers = nn.ModuleDict(dict(towers))
        missing = [m for m in sides.values() if m not in self.towers]
        if missing:
            raise ConfigError(f"sides name modalities {missing} that have no tower (towers: {list(self.towers)})")
        self.sides = dict(sides)
        self.info = dict(info or {})

    @property
    def modalities(self) -> List[str]:
        return list(self.towers)

    def tower(self, side_or_modality: str) -> Tower:
        name = self.sides.get(side_or_modality, side_or_modality)
        if name not in self.towers:
            raise ConfigError(
                f"no tower for {side_or_modality!r}; this model's modalities are {self.modalities} and its "
                f"sides {self.sides}"
            )
        return self.towers[name]

    def forward(self, features_by_side: Mapping[str, Any], train: bool = True,
                generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        return {side: self.tower(side)(feats, train=train, generator=generator)
                for side, feats in features_by_side.items()}

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # -- prompts, similarity, widths (sentence-transformers' names) -------------------------------------
    @property
    def prompts(self) -> Dict[str, str]:
        """Prompt text by side (``anchor``, ``positive``, ``negative``), set by ``fit(prompts=...)``;
        see :mod:`anycl.prompts`."""
        return dict(self.__dict__.get("_prompts", {}))

    @prompts.setter
    def prompts(self, value: Optional[Mapping[str, str]]) -> None:
        value = check_prompt_map(value)
        for side in value:
            if side in self.sides and self.tower(side).modality != "text":
                raise ConfigError(f"prompts apply to text only; the {side} side is {self.tower(side).modality!r}")
        had = bool(self.__dict__.get("_prompts"))
        self.__dict__["_prompts"] = value
        for name, tower in self.towers.items():  # the sentence-transformers folders carry them too
            st = getattr(tower.encoder, "st", None)
            if st is not None and (value or had):  # a base model's own prompts stay until anycl sets some
                st.prompts = st_prompts(value, [s for s, m in self.sides.items() if m == name])

    def prompt_for(self, side: str) -> Optional[str]:
        """The prompt of a side (``negative`` falls back to ``positive``); None without one."""
        return prompt_for(self.prompts, side)

    @property
    def similarity_fn_name(self) -> str:
        """``cosine`` (default), ``dot``, ``euclidean`` or ``manhattan``: what :meth:`similarity` computes."""
        return self.__dict__.get("_similarity_fn_name", "cosine")

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        value = getattr(value, "value", value)
        if value not in SIMILARITY_FUNCTIONS:
            raise ConfigError(f"similarity_fn_name must be one of {list(SIMILARITY_FUNCTIONS)}, got {value!r}")
        self.__dict__["_similarity_fn_name"] = value

    def similarity(self, a, b) -> torch.Tensor:
        """(N, M) similarities of two sets of embeddings with :attr:`similarity_fn_name`."""
        return similarity(a, b, self.similarity_fn_name)

    def _default_modality(self) -> str:
        return self.sides.get("anchor", self.modalities[0])

    def embedding_width(self, modality: Optional[str] = None) -> Optional[int]:
        """Width of what :meth:`encode` returns for a tower (before ``truncate_dim``)."""
        tower = self.tower(modality or self._default_modality())
        if tower.encode_with_head and tower.head is not None:
            return int(tower.head.anycl_spec["out_dim"])
        return tower.adapter.embedding_dim(tower.encoder)

    def get_sentence_embedding_dimension(self, modality: Optional[str] = None) -> Optional[int]:
        """The width of :meth:`encode`'s vectors (``truncate_dim`` applied when set on the model)."""
        width = self.embedding_width(modality)
        return min(width, self.truncate_dim) if self.truncate_dim and width else width

    get_embedding_dimension = get_sentence_embedding_dimension

    @property
    def truncate_dim(self) -> Optional[int]:
        """Default ``truncate_dim`` of :meth:`encode` (None: full width)."""
        return self.__dict__.get("_truncate_dim")

    @truncate_dim.setter
    def truncate_dim(self, value: Optional[int]) -> None:
        self.__dict__["_truncate_dim"] = check_truncate_dim(value, self.embedding_width())

    def _text_tower(self) -> Tower:
        for name in [self._default_modality(), *self.modalities]:
            if self.towers[name].modality == "text":
                return self.towers[name]
        raise ConfigError(f"this model has no text tower (modalities {self.modalities}); max_seq_length is text's")

    @property
    def max_seq_length(self) -> int:
        """The text tower's maximum length in tokens (longer texts are truncated); settable."""
        return int(self._text_tower().encoder.st.max_seq_length)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        tower = self._text_tower()
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"max_seq_length must be an int >= 2, got {value!r}")
        tower.encoder.st.max_seq_length = value
        tower.adapter.max_seq_length = value
        tower.adapter.options["max_seq_length"] = value

    # -- encode ----------------------------------------------------------------------------------------
    def encode_query(self, items: Any, **kwargs):
        """:meth:`encode` with the anchor side's tower and prompt (its ``query`` prompt when named so)."""
        return self._encode_side(items, "anchor", "query", kwargs)

    def encode_document(self, items: Any, **kwargs):
        """:meth:`encode` with the positive side's tower and prompt (its ``document`` prompt when named so)."""
        return self._encode_side(items, "positive", "document", kwargs)

    def _encode_side(self, items, side: str, st_name: str, kwargs):
        kwargs.setdefault("modality", self.sides.get(side, self._default_modality()))
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            kwargs["prompt"] = self.prompts.get(st_name, self.prompt_for(side))
        return self.encode(items, **kwargs)

    @torch.no_grad()
    def encode(self, items: Any, modality: Optional[str] = None, batch_size: int = 64,
               normalize: bool = True, device: Optional[str] = None, show_progress: Any = False,
               use_head: Optional[bool] = None, *, prompt_name: Optional[str] = None, prompt: Optional[str] = None,
               truncate_dim: Optional[int] = None, precision: str = "float32",
               convert_to_numpy: Optional[bool] = None, convert_to_tensor: Optional[bool] = None,
               normalize_embeddings: Optional[bool] = None, show_progress_bar: Optional[bool] = None,
               quantization_ranges=None, calibration_embeddings=None):
        """Embed raw items: an (N, D) float32 tensor on the CPU, L2-normalised unless ``normalize=False``;
        a single string gives one (D,) vector.

        ``modality`` picks the tower when the model has several (default: the anchor side's).
        Deterministic: evaluation views, dropout off, the same items give the same embeddings.
        ``show_progress``: True for a progress bar (items/s, ETA), or a tqdm bar to advance.

        sentence-transformers' options work too: ``normalize_embeddings`` and ``show_progress_bar``
        (aliases of ``normalize`` / ``show_progress``), ``prompt_name`` (a key of :attr:`prompts`) or
        ``prompt`` (text put before every item; wins over ``prompt_name``), ``truncate_dim`` (the
        first D dimensions, re-normalised), ``precision`` (``float32``, ``int8``, ``uint8``,
        ``binary``, ``ubinary``: :mod:`anycl.quantization`; int8/uint8 ranges from
        ``quantization_ranges`` (2, D), else ``calibration_embeddings``, else these embeddings),
        ``convert_to_numpy=True`` for a NumPy array, ``convert_to_tensor=True`` for a tensor.
        """
        normalize = resolve_alias(normalize, True, normalize_embeddings, "normalize", "normalize_embeddings")
        show_progress = resolve_alias(show_progress, False, show_progress_bar, "show_progress", "show_progress_bar")
        check_precision(precision)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        single = isinstance(items, (str, bytes))
        if single or not hasattr(items, "__len__"):
            items = [items] if single else list(items)
        modality = modality or self._default_modality()
        tower = self.tower(modality)
        with_head = tower.encode_with_head if use_head is None else (use_head and tower.head is not None)
        width = self.embedding_width(modality) if with_head == tower.encode_with_head else None
        truncate_dim = check_truncate_dim(truncate_dim if truncate_dim is not None else self.truncate_dim, width)
        if prompt is None and prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ConfigError(f"prompt_name {prompt_name!r} is not one of this model's prompts "
                                  f"{sorted(self.prompts) or '(none: train with fit(prompts=...))'}")
            prompt = self.prompts[prompt_name]
        if prompt and not getattr(tower.adapter, "supports_prompts", False):
            raise ConfigError(f"prompts apply to text only; the {tower.modality!r} tower takes none")
        emb = self._embed(items, tower, batch_size, with_head, device, show_progress, prompt or None)
        return finish(emb, normalize=normalize, truncate_dim=truncate_dim, precision=precision,
                      quantization_ranges=quantization_ranges, calibration_embeddings=calibration_embeddings,
                      convert_to_numpy=convert_to_numpy, convert_to_tensor=convert_to_tensor, single=single)

    def _embed(self, items: Sequence[Any], tower: Tower, batch_size: int, with_head: bool, device,
               show_progress, prompt: Optional[str]) -> torch.Tensor:
        """(N, D) float32 tower outputs of raw items, in order, on the CPU."""
        adapter = tower.adapter
        dev = torch.device(device) if device else self.device
        was_training = self.training
        self.eval()
        if dev != self.device:
            self.to(dev)
        out = []
        # texts are embedded longest first, so each batch pads to a similar length; order restored below
        by_length = bool(items) and all(isinstance(x, str) for x in items)
        order = sorted(range(len(items)), key=lambda i: -len(items[i])) if by_length else range(len(items))

        extra = {"prompt": prompt} if prompt else {}
        # show_progress: True (a bar of its own) or an enclosing phase's tqdm bar to advance
        with phase_bar(show_progress, len(items), f"encode ({tower.modality})") as bar:
            try:
                for start in range(0, len(items), batch_size):
                    views = []
                    for i in order[start:start + batch_size]:
                        adapter.validate(items[i], f"item {i}")
                        views.append(adapter.eval_view(adapter.load(items[i])))
                    feats = to_device(adapter.collate(views, **extra), dev)
                    out.append(tower(feats, train=False, use_head=with_head).float().cpu())
                    if bar is not None:
                        bar.update(len(views))
            finally:
                self.train(was_training)
        if not out:
            raise DataError("encode() got no items")
        emb = torch.cat(out)
        return emb[torch.argsort(torch.tensor(order))] if by_length else emb

    def export_sentence_transformers(self, path: str, modality: Optional[str] = None) -> str:
        """Write the text tower as a sentence-transformers folder: its adapter's ``export_sentence_transformers``
        (see ``adapters/text.py``) does it."""
        tower = self.tower(modality or self.sides.get("anchor", "text"))
        export = getattr(tower.adapter, "export_sentence_transformers", None)
        if export is None:
            raise ConfigError(f"the {tower.modality!r} tower is not a sentence-transformers model; only text towers "
                              f"export to the sentence-transformers format")
        return export(self, path, tower.modality)

    def export_onnx(self, path: str, modality: Optional[str] = None, **options) -> str:
        """Write one tower as ONNX (``model.onnx`` + inputs description + card) into folder ``path``; see
        :mod:`anycl.onnx_export`. Returns the ``.onnx`` file's path."""
        return export_onnx(self, path, modality, **options)

    # ------------------------------------------------------------------------------------------------
    def config(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sides": self.sides,
            "towers": {
                name: {
                    "modality": t.modality,
                    "adapter": t.adapter.config(),
                    "head": getattr(t.head, "anycl_spec", None) if t.head is not None else None,
                    "encode_with_head": t.encode_with_head,
                }
                for name, t in self.towers.items()
            },
            "info": self.info,
            "prompts": self.prompts,
            "similarity_fn_name": self.similarity_fn_name,
        }

    def save(self, path: str, overwrite: bool = False) -> str:
        """Write the model to folder ``path``: JSON config + safetensors weights, nothing pickled.

        Refuses an existing ``path`` unless ``overwrite=True``; even then it refuses a non-empty folder
        that anycl did not write (one without its ``anycl_manifest.json``). Overwriting replaces only
        the files named in the manifest (anycl's own); other files in the folder stay. The model is
        written into a temporary folder beside ``path`` and renamed into place, so a failed save (a full
        disk, a kill) never leaves a half-written model where a good one was. Files and folders get the
        process umask (0644/0755 by default), so another account can load the model.
        """
        path = os.fspath(path)
        target = Path(path)
        check_parent(target, "the model to")
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{path!r} exists and is a file, not a folder; choose another path")
        previous = _owned_entries(target) if target.exists() else None
        if target.exists() and not overwrite:
            raise FileExistsError(f"{path!r} already exists; pass overwrite=True to replace it")
        if previous is None and target.exists() and any(target.iterdir()):
            raise FileExistsError(
                f"{path!r} is a non-empty folder that anycl did not write (no {MANIFEST_FILE}); overwrite=True only "
                f"replaces anycl's own model files. Choose an empty or new folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        moved: List[str] = []  # the user's files moved into tmp (given back if the save fails)
        try:
            try:
                self._write(tmp, path)
            except OSError as exc:  # e.g. a full disk: what was at path is untouched
                raise reworded(exc, f"saving the model to {path!r} failed ({exc.strerror or exc}); "
                                         f"{'the model already there is unchanged' if previous else 'nothing was written there'}")
            ours = sorted(p.name for p in tmp.iterdir())
            (tmp / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT, "written_by": "anycl",
                                                         "entries": ours + [MANIFEST_FILE]}, indent=1))
            apply_umask(tmp)
            if target.exists():
                # the user's own files in the folder move into the new model folder before the swap
                foreign = [p for p in target.iterdir() if p.name not in (previous or set())]
                clash = [p.name for p in foreign if (tmp / p.name).exists()]
                if clash:
                    raise FileExistsError(f"{path!r} holds {clash}, which anycl did not write but would now write; "
                                          f"move them away first")
                for p in foreign:
                    os.replace(p, tmp / p.name)
                    moved.append(p.name)
            replace_folder(tmp, target)
        except BaseException:
            if target.exists() and tmp.exists():  # give back what was moved over
                for name in moved:
                    if (tmp / name).exists() and not (target / name).exists():
                        os.replace(tmp / name, target / name)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def _write(self, tmp: Path, path: str) -> None:
        config = self.config()
        heads = {}
        for name, t in self.towers.items():
            sub = tmp / "towers" / name
            sub.mkdir(parents=True)
            if getattr(t, "lora", None) is not None:  # unmerged LoRA: base weights + adapter (anycl.lora)

                config["towers"][name]["encoder"] = save_tower(t, str(sub))
            else:
                config["towers"][name]["encoder"] = t.adapter.save_encoder(t.encoder, str(sub))
            if t.head is not None:
                for k, v in t.head.state_dict().items():
                    heads[f"{name}.{k}"] = v.detach().contiguous().cpu()
        if heads:
            save_file(heads, str(tmp / HEADS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))

        write_model_files(self, str(tmp), path)


MANIFEST_FILE = "anycl_manifest.json"
# what anycl wrote into a model folder before it kept a manifest
_LEGACY_ENTRIES = {CONFIG_FILE, HEADS_FILE, "towers", "README.md", "config.yaml"}


def _names_written(folder: Path) -> set:
    try:
        return set(json.loads((folder / MANIFEST_FILE).read_text()).get("entries", []))
    except (OSError, ValueError, AttributeError):
        return set()


def _owned_entries(folder: Path) -> Optional[set]:
    """The top-level names anycl wrote in ``folder`` (from its manifest); an empty set for an empty folder;
    None for a folder anycl did not write."""
    if not any(folder.iterdir()):
        return set()
    if (folder / MANIFEST_FILE).is_file():
        names = _names_written(folder)
        return names | {MANIFEST_FILE} if names else None
    if (folder / CONFIG_FILE).is_file():  # a model saved before manifests existed
        try:
            if json.loads((folder / CONFIG_FILE).read_text()).get("format") == FORMAT:
                return set(_LEGACY_ENTRIES)
        except (OSError, ValueError, AttributeError):
            return None
    return None


def load(path: str, encoders: Optional[Mapping[str, nn.Module]] = None, device: Optional[str] = None) -> ContrastiveModel:
    """Load a model written by :meth:`ContrastiveModel.save`.

    ``encoders`` supplies user-defined encoder modules (by modality) whose architecture anycl could not
    write as JSON; their weights are still read from the folder.
    """
    path = os.fspath(path)
    if not (Path(path) / CONFIG_FILE).exists() and (Path(path) / "model" / CONFIG_FILE).exists():
        path = os.path.join(path, "model")  # the output_dir of a fit run
    cfg_file = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path!r} is not a folder; anycl.load takes the folder written by model.save")
    if not cfg_file.exists():
        raise ConfigError(f"{path!r} is not an anycl model: it has no {CONFIG_FILE} (was it written by model.save?)")
    try:
        config = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cfg_file} is not valid JSON: {exc}") from exc
    if config.get("format") != FORMAT:
        raise ConfigError(f"{path!r} is not an anycl model ({CONFIG_FILE} has format {config.get('format')!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{path!r} was written by a newer anycl (format {config['format_version']}); upgrade anycl")


    towers_dir = Path(path) / "towers"
    pickles = sorted(str(p.relative_to(path)) for p in towers_dir.rglob("*")
                     if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES) if towers_dir.is_dir() else []
    if pickles:  # anycl writes none; a loader might unpickle them (which runs code)
        raise ConfigError(f"{path!r} holds pickle file(s) {pickles} that anycl did not write; anycl models are "
                          f"safetensors + JSON only and are not loaded with pickles beside them. Remove them")
    for weights in sorted(Path(path).rglob("*.safetensors")):  # a truncated file: an error naming it
        try:
            check_safetensors(weights)
        except StateFileError as exc:
            raise ConfigError(f"cannot load the model {path!r}: {exc}") from exc
    heads_state = load_file(str(Path(path) / HEADS_FILE)) if (Path(path) / HEADS_FILE).exists() else {}
    towers = {}
    for name, tcfg in config["towers"].items():
        adapter = get_adapter(tcfg["modality"], **tcfg.get("adapter", {}))
        sub = str(Path(path) / "towers" / name)
        spec = tcfg.get("encoder") or {}
        if encoders and name in encoders:
            encoder = encoders[name]

            encoder.load_state_dict(load_file(os.path.join(sub, "encoder.safetensors")))
        else:
            encoder = adapter.load_encoder(spec, sub)
        head = build_head(tcfg.get("head"))
        if head is not None:
            prefix = f"{name}."
            head.load_state_dict({k[len(prefix):]: v for k, v in heads_state.items() if k.startswith(prefix)})
        towers[name] = Tower(adapter, encoder, head, tcfg.get("encode_with_head", False))
        if (Path(sub) / "lora").is_dir():  # a LoRA adapter saved unmerged (anycl.lora)

            load_tower_adapter(towers[name], sub)
    model = ContrastiveModel(towers, config["sides"], config.get("info"))
    model.prompts = config.get("prompts") or {}
    model.similarity_fn_name = config.get("similarity_fn_name", "cosine")
    model.eval()
    if device:
        model.to(device)
    return model

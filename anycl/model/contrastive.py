"""ContrastiveModel: one tower (adapter + encoder + optional projection head) per modality.

Sides (``anchor``, ``positive``, ``negative``) map to towers; when every side is the same modality
they share one tower (a siamese model), and with two modalities (image–text, audio–text) there are two.
``encode`` embeds raw items deterministically (evaluation views, no dropout), ``save`` writes
safetensors weights plus JSON files (no pickle; files get the process umask, overwrite keeps files anycl did
not write, see :meth:`ContrastiveModel.save`), :func:`load` rebuilds the model and refuses pickle files in
its tower folders and truncated weights, naming the file. :func:`build_model` makes a new model from
modality names. Towers and heads: :mod:`anycl.model.tower`; the folder format: :mod:`anycl.model.folder`;
prompts, similarity, widths and ``max_seq_length`` (sentence-transformers' names): :mod:`anycl.model.st_names`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union, cast

import torch
from torch import nn

from anycl.errors import ConfigError
from anycl.export import hub
from anycl.export import registry as exports
from anycl.export.card_sources import is_hub_id

from .build import build_towers, per_modality  # noqa: F401  (per_modality: importable from here, as before)
from .embed import embed_with_tower
from .embedding_ops import check_truncate_dim, finish, resolve_alias
from .engines import check_engine
from .folder import (  # noqa: F401
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    HEADS_FILE,
    MANIFEST_FILE,
    read_model,
    save_model,
)
from .quantization import check_precision
from .st_names import SentenceTransformerNames
from .tower import Tower, build_head, projection_head  # noqa: F401  (importable from here too)


class ContrastiveModel(SentenceTransformerNames, nn.Module):
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
        return cast(Tower, self.towers[name])  # nn.ModuleDict is not generic

    def _tower_items(self) -> List[Tuple[str, Tower]]:
        return [(name, cast(Tower, t)) for name, t in self.towers.items()]

    def forward(
        self, features_by_side: Mapping[str, Any], train: bool = True, generator: Optional[torch.Generator] = None
    ) -> Dict[str, torch.Tensor]:
        return {
            side: self.tower(side)(feats, train=train, generator=generator) for side, feats in features_by_side.items()
        }

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

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
    def encode(
        self,
        items: Any,
        modality: Optional[str] = None,
        batch_size: int = 64,
        normalize: bool = True,
        device: Optional[str] = None,
        show_progress: Any = False,
        use_head: Optional[bool] = None,
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        truncate_dim: Optional[int] = None,
        precision: str = "float32",
        convert_to_numpy: Optional[bool] = None,
        convert_to_tensor: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
        show_progress_bar: Optional[bool] = None,
        quantization_ranges=None,
        calibration_embeddings=None,
        engine: str = "torch",
    ):
        """Embed raw items: an (N, D) float32 tensor on the CPU, L2-normalised unless ``normalize=False``;
        a single string gives one (D,) vector.

        ``modality`` picks the tower when the model has several (default: the anchor side's).
        Deterministic: evaluation views, dropout off, the same items give the same embeddings.
        ``show_progress``: True for a progress bar (items/s, ETA), or a tqdm bar to advance.

        sentence-transformers' options work too: ``normalize_embeddings`` and ``show_progress_bar``
        (aliases of ``normalize`` / ``show_progress``), ``prompt_name`` (a key of :attr:`prompts`) or
        ``prompt`` (text put before every item; wins over ``prompt_name``), ``truncate_dim`` (the
        first D dimensions, re-normalised), ``precision`` (``float32``, ``int8``, ``uint8``,
        ``binary``, ``ubinary``: :mod:`anycl.model.quantization`; int8/uint8 ranges from
        ``quantization_ranges`` (2, D), else ``calibration_embeddings``, else these embeddings),
        ``convert_to_numpy=True`` for a NumPy array, ``convert_to_tensor=True`` for a tensor.

        ``engine``: what computes the embeddings (:mod:`anycl.model.engines`): ``"torch"`` (the default:
        float32, equal to sentence-transformers' to about 1e-7), ``"torch-bf16"`` (bfloat16 autocast),
        ``"onnx"`` / ``"onnx-int8"`` (ONNX Runtime on the CPU, float32 or dynamic int8 weights; ``pip install
        'anycl[onnx]'``) or ``"auto"`` (bf16 where the device has bf16 units, else float32). The fast engines
        change embeddings by about 1e-3 (tolerances per engine: docs/scale.md), so none is the default.
        ``precision`` is the output's quantisation, not the engine.
        """
        normalize = resolve_alias(normalize, True, normalize_embeddings, "normalize", "normalize_embeddings")
        show_progress = resolve_alias(show_progress, False, show_progress_bar, "show_progress", "show_progress_bar")
        check_precision(precision)
        check_engine(engine)
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
                raise ConfigError(
                    f"prompt_name {prompt_name!r} is not one of this model's prompts "
                    f"{sorted(self.prompts) or '(none: train with fit(prompts=...))'}"
                )
            prompt = self.prompts[prompt_name]
        if prompt and not getattr(tower.adapter, "supports_prompts", False):
            raise ConfigError(f"prompts apply to text only; the {tower.modality!r} tower takes none")
        emb = embed_with_tower(self, items, tower, batch_size, with_head, device, show_progress, prompt or None, engine)
        return finish(
            emb,
            normalize=normalize,
            truncate_dim=truncate_dim,
            precision=precision,
            quantization_ranges=quantization_ranges,
            calibration_embeddings=calibration_embeddings,
            convert_to_numpy=convert_to_numpy,
            convert_to_tensor=convert_to_tensor,
            single=single,
        )

    def export(self, format: str, path: str, **options) -> str:
        """Write the model (or one tower: ``modality=``) in a registered format (``anycl.export.names()``:
        ``"onnx"``, ``"sentence-transformers"``, and plugins') at ``path``, with the format's ``options``;
        returns the path it wrote. An unknown format is an error naming the registered ones."""
        return exports.export(self, format, path, **options)

    def export_sentence_transformers(self, path: str, modality: Optional[str] = None, overwrite: bool = False) -> str:
        """Write the text tower as a sentence-transformers folder (:mod:`anycl.export.to_sentence_transformers`);
        a folder that is not empty is refused unless ``overwrite=True``."""
        return self.export("sentence-transformers", path, modality=modality, overwrite=overwrite)

    def export_onnx(self, path: str, modality: Optional[str] = None, **options) -> str:
        """Write one tower as ONNX (``model.onnx`` + inputs description + card) into folder ``path``; see
        :mod:`anycl.export.to_onnx`. Returns the ``.onnx`` file's path."""
        return self.export("onnx", path, modality=modality, **options)

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
                for name, t in self._tower_items()
            },
            "info": self.info,
            "prompts": self.prompts,
            "similarity_fn_name": self.similarity_fn_name,
        }

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Upload the model to the Hugging Face Hub repository ``repo_id`` and return the commit's URL. Options
        (all by name): ``format`` (``"anycl"``, the default, or an export such as ``"sentence-transformers"``),
        ``private``, ``token``, ``exist_ok`` (default True), ``commit_message``, ``revision``, ``create_pr``,
        ``license``, ``language``, and the export's own (``modality=``). See :mod:`anycl.export.hub`; load it back
        with ``anycl.load(repo_id)``."""
        return hub.push_to_hub(self, repo_id, **options)

    def save(
        self, path: str, overwrite: bool = False, *, license: Optional[str] = None, language: Optional[Any] = None
    ) -> str:
        """Write the model to folder ``path``: JSON config + safetensors weights, nothing pickled.

        ``license`` and ``language`` (a code or a list) go into the model card's front matter and stay with the
        model (``model.info["card"]``) for later saves and pushes.

        Refuses an existing ``path`` unless ``overwrite=True``; even then it refuses a non-empty folder
        that anycl did not write (one without its ``anycl_manifest.json``). Overwriting replaces only
        the files named in the manifest (anycl's own); other files in the folder stay. The model is
        written into a temporary folder beside ``path`` and renamed into place, so a failed save (a full
        disk, a kill) never leaves a half-written model where a good one was. Files and folders get the
        process umask (0644/0755 by default), so another account can load the model.
        """
        hub.set_card_fields(self, license, language)
        return save_model(self, path, overwrite)


def load(
    path: str, encoders: Optional[Mapping[str, nn.Module]] = None, device: Optional[str] = None
) -> ContrastiveModel:
    """Load a model written by :meth:`ContrastiveModel.save`, from its folder or from a Hub repository it was
    pushed to (``"org/name"``, when no local folder has that name; read from the local cache when offline).

    ``encoders`` supplies user-defined encoder modules (by modality) whose architecture anycl could not
    write as JSON; their weights are still read from the folder.
    """
    if isinstance(path, str) and not os.path.exists(os.path.expanduser(path)) and is_hub_id(path):
        path = hub.download(path)
    towers, config = read_model(path, encoders)
    model = ContrastiveModel(towers, config["sides"], config.get("info"))
    model.prompts = config.get("prompts") or {}
    model.similarity_fn_name = config.get("similarity_fn_name", "cosine")
    model.eval()
    if device:
        model.to(device)
    return model


def build_model(
    sides: Mapping[str, str],
    *,
    model: Union[str, Mapping[str, str], None] = None,
    encoder=None,
    encoder_options=None,
    adapter_options=None,
    head: Any = "default",
) -> ContrastiveModel:
    """The model factory (as open_clip's ``create_model_and_transforms``): one tower per distinct modality
    of ``sides``, shared by the sides that use it. ``model``: a pretrained model name or path (a string
    goes to the text tower, or the only one; ``{modality: name}`` picks per tower); ``encoder``: a module
    (or ``{modality: module}``) used as it is; ``encoder_options`` / ``adapter_options``: options for the
    registered adapter's default encoder and for the adapter (either may be ``{modality: options}``);
    ``head``: ``"default"`` (the adapter's choice for one tower, 256 for two), a width, True/"mlp" (128)
    or None."""
    towers = build_towers(
        sides,
        model=model,
        encoder=encoder,
        encoder_options=encoder_options,
        adapter_options=adapter_options,
        head=head,
    )
    return ContrastiveModel(towers, dict(sides))

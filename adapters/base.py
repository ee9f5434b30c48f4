"""The adapter contract: everything modality-specific between a raw item and an encoder's input.

An adapter turns one raw item (a string, a file path, an array, an HF feature dict) into a tensor,
makes augmented views of it, batches items, and optionally runs batched work on the training device
(log-mel spectrograms, for example). It also knows its modality's default encoder and how to save and
rebuild that encoder. Adapters hold configuration only, never training state, so they are cheap to
copy into data-loader workers, and they are deterministic given the ``torch.Generator`` they are handed.

``fit`` does not pass adapters around on their own: per data column it makes one
:class:`anycl.data.column_spec.ColumnSpec` from the adapter of the column's side (``validate``, ``key``,
``lengths``, ``collate``), which the item checks, the sampler and the batch builder read.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch
from torch import nn

from anycl.errors import ConfigError, DataError
from anycl.keys import item_key  # noqa: F401  (kept importable from here)
from anycl.weights import load_checked

from .preview import Preview, text_preview


class Adapter:
    """Base class of modality adapters. Subclasses override the methods their modality needs.

    Class attributes:
        modality: the registry name (``"text"``, ``"audio"``, ``"image"`` …).
        file_extensions: file suffixes (lower case, with the dot) that a folder of this modality holds.
        default_loss: the loss ``fit`` uses when the user names none, with ``default_loss_options``.
        fit_defaults: ``fit``'s per-modality defaults (batch size, lr, head, …); ``pretrained_fit_defaults`` go on
            top of them when ``model=`` names a pretrained model for the anchor tower (audio: a fine-tuning lr).
        export_formats: the formats (``anycl.export``) a tower of this modality can be written in besides
            anycl's own folder and ONNX: ``"sentence-transformers"`` for text (its towers are sentence-transformers
            models: a guide named by a sentence-transformers id, the model card's load code).

    Capabilities the core asks about instead of testing a modality's name (each off by default):
        supports_prompts: ``collate(items, prompt=...)`` puts a prompt in front of each item (``fit(prompts=...)``,
            ``include_prompt``; :mod:`anycl.data.prompts`).
        text_items: an item is text: a string item is its content, not a file path (the embedding cache hashes it
            by value), and the training report can show it (retrieval examples).
        claims_model_name: a plain string ``model=`` given to a model of several towers names this tower's
            pretrained model (the other towers keep their default encoders).
        pretrained_default: the default encoder is a pretrained model, so self-supervised data keeps one epoch
            (as SimCSE does) rather than the step budget for encoders trained from scratch
            (:func:`anycl.fitting.recipe.step_budget`).
        pipeline_tag: the Hugging Face Hub ``pipeline_tag`` of a model card whose first tower is this modality.
        onnx_input_name: the ONNX input's name when ``collate`` gives one tensor (a dict's keys name themselves).
        onnx_dynamic_axes: the ONNX inputs' dynamic axes (batch; text adds its token axis).
        example_views(): two evaluation views of made-up items to trace an ONNX export with (None: the user gives
            ``example=``).
        item_from_file(path): the item one file of a folder data set gives (default: its path, which ``load``
            decodes; text: the file's text).
        recipe(): what ``fit``'s one-line recipe says of this modality's training views ({"window": "1 s",
            "augment": "..."}; default: nothing).
        scan(item): a cheap check before training that ``load`` can read an item (image: the file's header and
            checksums, :func:`anycl.adapters.image_io.scan`); by default none, and ``load`` finds a bad item.
        data_options(items, options): adapter options chosen from a sample of the data when the user gave none
            (image: ``preset="small"`` for images of 64 px or less); by default none.
        estimates_memory: ``fit`` estimates a step's memory from one item's activations (its
            ``example_views()``) before training (:mod:`anycl.fitting.memory`).
    """

    modality: str = "base"
    file_extensions: tuple = ()
    default_loss: str = "infonce"
    default_loss_options: Dict[str, Any] = {"temperature": 0.1}
    fit_defaults: Dict[str, Any] = {"batch_size": 64, "lr": 1e-3, "head": "mlp"}
    pretrained_fit_defaults: Dict[str, Any] = {}
    export_formats: tuple = ()
    supports_prompts: bool = False
    text_items: bool = False
    claims_model_name: bool = False
    pretrained_default: bool = False
    pipeline_tag: str = "feature-extraction"
    onnx_input_name: str = "input"
    onnx_dynamic_axes: Dict[int, str] = {0: "batch"}
    estimates_memory: bool = False

    def __init__(self, **options):
        self.options = dict(options)

    # ---- one item -----------------------------------------------------------------------------
    def validate(self, item: Any, where: str) -> None:
        """Raise :class:`~anycl.errors.DataError` naming ``where`` if ``item`` cannot be used."""
        if item is None:
            raise DataError(f"{where} is None; every {self.modality} item must have a value")

    def validate_for_encode(self, item: Any, where: str) -> None:
        """:meth:`validate` for an item given to ``encode`` (and evaluation, mining): by default the same check;
        an adapter may accept here what training refuses (text: the empty string, as sentence-transformers)."""
        self.validate(item, where)

    def key(self, item: Any) -> Any:
        """A hashable identity used to find duplicates within a batch (duplicates are false negatives).

        The default hashes strings, bytes and paths by value and arrays by their bytes; never compares
        items one by one.
        """
        return item_key(item)

    def lengths(self, items: List[Any]) -> List[int]:
        """The cost of each item for length-grouped batching (``group_by_length``): items of similar
        length share a batch, so little padding is computed. The default is a string's number of
        characters (0 for other items); the text adapter counts tokens, capped at ``max_seq_length``."""
        return [len(x) if isinstance(x, str) else 0 for x in items]

    @staticmethod
    def item_from_file(path: str) -> Any:
        """The item one file of a folder data set (``file_extensions``) gives: its path, which ``load``
        decodes (the text adapter reads the file's text instead)."""
        return path

    def scan(self, item: Any) -> None:
        """A cheap check, before training, that :meth:`load` can read ``item``: a DataError naming it where it
        cannot. The default checks nothing (``load`` finds a bad item when it reads it). ``fit`` calls it on the
        columns whose items are paths, bytes or dicts (what a file gives); items already in memory are not scanned."""

    @classmethod
    def data_options(cls, items: List[Any], options: Dict[str, Any]) -> Dict[str, Any]:
        """Adapter options to add, chosen from ``items`` (a small sample of the training items of this modality)
        given the ``options`` the user gave; each choice is said in the log. The default chooses none."""
        return {}

    def load(self, item: Any) -> Any:
        """Decode one raw item into what ``augment`` and ``collate`` take (runs on CPU, per item)."""
        return item

    def augment(self, item: Any, generator: torch.Generator) -> Any:
        """Return one random view of a loaded item; must draw all randomness from ``generator``."""
        return item

    def eval_view(self, item: Any) -> Any:
        """The deterministic view used for evaluation and ``encode`` (for example a centre crop)."""
        return item

    def from_view(self, view: Any, source: Adapter) -> Any:
        """A view that ``source`` (another adapter of this modality: a student's, when this adapter is a
        distillation teacher's) made, brought to this adapter's input (its size, channels, sample rate). The
        default keeps it as it is."""
        return view

    def batch_views(self, batch: Any, generator: Optional[torch.Generator]) -> Optional[List[Any]]:
        """The collated ``batch``'s views after the augmentation that ``prepare(train=True)`` makes on the
        device, drawing the same random numbers from ``generator`` (so that a distillation teacher sees what the
        student saw), as per-item views ``from_view`` takes; None (the default) when ``prepare`` changes nothing
        a view can show (the loaded views are then the views)."""
        return None

    def preview(self, item: Any) -> Preview:
        """How the training report shows ``item`` (:mod:`adapters.preview`): by default its text or a short
        description; the image adapter gives a thumbnail, the audio adapter a short playable excerpt."""
        return text_preview(item)

    def collate(self, items: List[Any]) -> Any:
        """Batch loaded items into encoder input (a tensor or a dict of tensors), on CPU."""
        return torch.stack([torch.as_tensor(x) for x in items])

    def prepare(self, batch: Any, train: bool, generator: Optional[torch.Generator] = None) -> Any:
        """Batched work on the training device after collate (features, batched augmentations)."""
        return batch

    def window_count(self, features: Any) -> int:
        """K when prepared ``features`` hold K evaluation windows per item on the axis after the batch (the
        tower then runs an encoder that does not take windows (``accepts_windows``) on every window and averages
        the K embeddings); 0 when they hold none (the default)."""
        return 0

    def count(self, batch: Any) -> int:
        """How many items a collated batch holds."""
        if isinstance(batch, dict):
            for v in batch.values():
                if torch.is_tensor(v):
                    return int(v.shape[0])
        return int(batch.shape[0])

    def example_views(self) -> Optional[List[Any]]:
        """Two evaluation views of made-up items (what ``collate`` takes), to trace an export with; None when the
        adapter cannot make any (``export_onnx`` then needs ``example=`` items)."""
        return None

    def recipe(self) -> Dict[str, str]:
        """The training views in words for the run's recipe line (:mod:`anycl.fitting.recipe`): the window or crop
        and the augmentations, in the order they are said. Nothing by default."""
        return {}

    # ---- encoders -------------------------------------------------------------------------------
    def default_encoder(self, *args: Any, **options: Any) -> nn.Module:
        raise NotImplementedError(f"the {self.modality} adapter has no default encoder; pass encoder=")

    def adopt_encoder(self, module: nn.Module) -> nn.Module:
        """The tower's encoder for a module the user passed (``encoder=`` or ``model=<module>``): the module
        itself by default; an adapter may wrap a library's model class it knows (the text adapter wraps a
        ``SentenceTransformer``). The result is trained in place: no copy is made."""
        return module

    def attach(self, encoder: nn.Module) -> None:
        """Called once the tower's encoder is known (the text adapter takes its tokenizer from it)."""

    def save_encoder(self, encoder: nn.Module, directory: str) -> Dict[str, Any]:
        """Write the encoder's weights under ``directory``; return a JSON spec that rebuilds it.

        Encoders built by ``default_encoder`` carry an ``anycl_spec`` (their options) and are rebuilt
        from it; any other module is saved as weights only, and ``anycl.load`` then needs the module
        (``encoders={name: module}``).
        """
        state = {k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()}
        safetensors.torch.save_file(state, os.path.join(directory, "encoder.safetensors"))
        spec = getattr(encoder, "anycl_spec", None)
        if spec is None:
            cls = type(encoder)
            return {"kind": "custom", "class": f"{cls.__module__}.{cls.__qualname__}"}
        return {"kind": "default", "options": spec}

    def load_encoder(self, spec: Dict[str, Any], directory: str) -> nn.Module:
        if spec.get("kind") == "custom":
            raise ConfigError(
                f"this model's {self.modality} encoder is a user module ({spec.get('class')}); rebuild it and "
                f"pass it to anycl.load(path, encoders={{'{self.modality}': module}})"
            )
        options = spec.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"the {self.modality} encoder's options must be an object, got {options!r}")
        # built only once its shapes match the weights file's header: the options cannot make anycl allocate
        # more than the file holds (anycl.weights)
        return load_checked(
            lambda: self.default_encoder(**options),
            os.path.join(directory, "encoder.safetensors"),
            f"the {self.modality} encoder's options in anycl_config.json",
        )

    def embedding_dim(self, encoder: nn.Module) -> Optional[int]:
        return getattr(encoder, "embedding_dim", None)

    # ---- config -------------------------------------------------------------------------------
    def config(self) -> Dict[str, Any]:
        """JSON-serialisable options that rebuild this adapter (``type(self)(**config)``)."""
        json.dumps(self.options)  # fail early, at save time, if an option is not JSON
        return dict(self.options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"

"""``fit``'s set-up once the model is built: its prompts, frozen towers, guide and LoRA layers; then the
sampler and batch builder of each data set, the evaluator, and the report's retrieval examples."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from anycl.adapters import ADAPTERS
from anycl.data.inputs import Rows
from anycl.data.prompts import resolve_fit_prompts
from anycl.data.views import multiview_builder, view_counts
from anycl.errors import ConfigError
from anycl.evaluation.choose import build_evaluator
from anycl.evaluation.crossmodal import freeze
from anycl.losses.matryoshka import check_dims
from anycl.model.contrastive import Tower
from anycl.model.lora import apply_lora
from anycl.options.fit_config import FitConfig
from anycl.report.examples import RetrievalExamples, folder_labels
from anycl.sampling import factory as sampling
from anycl.sampling.multi_dataset import MultiBatchBuilder, MultiDatasetSampler
from anycl.training.guide import make_guide

log = logging.getLogger("anycl")


def fit_prompts(cfg: FitConfig, rows: Rows, sides: Mapping[str, str]) -> Dict[str, str]:
    """The prompts of each side, and a checked ``include_prompt`` (before any model is loaded)."""
    mines = cfg.sampler == "mined" or bool(getattr(cfg.sampler, "num_negatives", 0))
    takes = {m for m in sides.values() if getattr(ADAPTERS.lookup(m), "supports_prompts", False)}
    prompts = resolve_fit_prompts(
        cfg.prompts, rows.columns, cfg.columns, sides, mined_negatives=mines, prompt_modalities=takes
    )
    if not isinstance(cfg.include_prompt, bool):
        raise ConfigError(f"include_prompt must be True or False, got {cfg.include_prompt!r}")
    if not cfg.include_prompt and not takes:
        raise ConfigError("include_prompt applies to text towers; this model has none")
    return prompts


def training_width(tower: Tower) -> Optional[int]:
    """Width of the embeddings the loss sees from a tower (its head's output when it has one)."""
    if tower.head is not None:
        spec: Any = tower.head.anycl_spec  # a projection head's: how to rebuild it
        return int(spec["out_dim"])
    return tower.adapter.embedding_dim(tower.encoder)


def set_up_model(model, cfg: FitConfig, prompts, matryoshka: Optional[Tuple[List[int], List[float]]], build_text_model):
    """Prompts, pooling, frozen towers, LoRA; returns the guide (anycl.training.guide) or None.

    ``build_text_model(name)`` builds a plain text model, for a guide given by name."""
    if matryoshka is not None:
        check_dims(*matryoshka, width=training_width(model.tower("anchor")))
    model.prompts = prompts
    if not cfg.include_prompt:  # sentence-transformers' Pooling(include_prompt=False): saved in its config
        for t in model.towers.values():
            if getattr(t.encoder, "st", None) is not None:
                t.encoder.st.set_pooling_include_prompt(False)
    if cfg.freeze:
        freeze(model, cfg.freeze)
    guide = None
    if cfg.guide is not None:  # a frozen model scoring each batch for false negatives
        guide = make_guide(cfg.guide, model, build_text_model)
    if cfg.peft:  # LoRA layers injected in place, base weights frozen
        lora_params = apply_lora(model, cfg.peft)
        log.info("LoRA: %s trainable adapter parameters", ", ".join(f"{k} {v:,}" for k, v in lora_params.items()))
    return guide


def default_sampler_options(
    cfg: FitConfig,
    fit_defaults: Mapping[str, Any],
    sides: Mapping[str, str],
    self_supervised: bool = False,
    loss_sampler: Optional[str] = None,
) -> Dict[str, Any]:
    """The sampler options ``fit`` uses: the user's, plus the anchor adapter's ``in_batch_defaults`` (text:
    ``group_by_length`` 8) for keys the user did not set, when the sampler is the default ``in_batch`` and
    every side has the anchor's modality (a cross-modal run's rows have no common length), unless the user
    turned shuffling off (their order is kept). ``self_supervised`` data (:func:`anycl.fitting.recipe.self_supervised`)
    trains on full batches only (``drop_last``, unless the user set it). ``loss_sampler``: the sampler the loss
    pairs one column with (:func:`anycl.sampling.factory.loss_sampler`), which takes none of those defaults."""
    sopts = dict(cfg.sampler_options or {})
    keep_order = sopts.get("shuffle") is False  # the user's own order is not re-sorted by length
    if loss_sampler is not None and cfg.sampler is None:
        return sopts
    if cfg.sampler in (None, "in_batch") and len(set(sides.values())) == 1 and not keep_order:
        for key, value in fit_defaults.get("in_batch_defaults", {}).items():
            sopts.setdefault(key, value)
    if cfg.sampler in (None, "in_batch") and self_supervised:  # no sawtooth from each epoch's short last batch
        sopts.setdefault("drop_last", True)
    return sopts


def samplers_and_builders(
    cfg: FitConfig,
    model,
    parts: Mapping[str, Rows],
    losses,
    guide,
    prompts,
    multi: bool,
    seed: int,
    sopts,
    precision: Optional[str] = None,
) -> Tuple[Any, Any, Dict[str, Any]]:
    """(sampler, batch builder, sampler options used) — one pair per data set, mixed for several; with
    views/local_views the multi-view builder (anycl.data.views). ``sopts``: :func:`default_sampler_options`;
    ``precision``: the run's resolved mixed precision (a mining sampler mines in bf16 under bf16)."""
    sopts = dict(sopts)
    sopts.setdefault("seed", seed)
    samplers, builders = {}, {}
    for name, part in parts.items():
        samplers[name], builders[name] = sampling.sampler_and_builder(
            cfg, sopts, part, model, losses[name], guide, prompts, precision
        )
    builder: Any  # a BatchBuilder, or a MultiBatchBuilder (same build interface) for several data sets
    if multi:
        sampler, builder = (
            MultiDatasetSampler(samplers, cfg.multi_dataset_sampling or "proportional", seed),
            MultiBatchBuilder(builders),
        )
    else:
        sampler, builder = samplers[""], builders[""]
    return sampler, multiview_builder(view_counts(cfg.views, cfg.local_views), builder), sopts


def make_evaluator(cfg: FitConfig, sides: Mapping[str, str], multi: bool, exts: tuple, seed: int):
    """The evaluation of ``eval_dataset``, as :func:`anycl.evaluation.choose.build_evaluator` decides (``eval_kind``,
    ``probe``, else by its columns and the ``sides``' modalities). Made before any model loads, so that evaluation
    data that cannot be used (empty, one pair, NaN labels) stops the run first; :func:`evaluate_widths` adds the
    Matryoshka widths once the model is built."""
    return build_evaluator(
        cfg.eval_dataset,
        cfg.eval_kind,
        cfg.columns if not multi else None,
        file_extensions=exts,
        seed=seed,
        sides=sides,
        probe=cfg.probe,
    )


def evaluate_widths(evaluator, model, matryoshka) -> None:
    """With Matryoshka dims, the evaluator reports its metrics at every trained width below the model's."""
    if matryoshka is not None and hasattr(evaluator, "truncate_dims"):
        evaluator.truncate_dims = [d for d in matryoshka[0] if d < (model.embedding_width() or 0)]


def retrieval_examples(output_dir, sides, evaluator, rows, seed: int) -> Optional[RetrievalExamples]:
    """With an output_dir: the report's nearest-neighbour examples (anycl.report.examples), any modality, from
    the evaluation set when its items can be read off the evaluator, else from the training rows; searched
    before training here and again when the report is written."""
    if not output_dir or os.environ.get("RANK", "0") != "0":
        return None
    examples = _from_evaluator(evaluator, sides["anchor"], seed)
    origin = "evaluation set"
    if examples is None and not rows.streaming:
        examples, origin = _from_rows(rows, sides["anchor"], seed), "training data"
    if examples is not None:
        examples.origin = origin
    return examples


def _from_evaluator(ev, anchor: str, seed: int) -> Optional[RetrievalExamples]:
    """The examples from an evaluator whose items can be read off it (retrieval, cross-modal, probe, kNN)."""
    if all(hasattr(ev, a) for a in ("queries", "corpus", "relevant")):  # retrieval pairs
        return RetrievalExamples.pick(
            ev.queries,
            ev.corpus,
            ev.relevant,
            seed=seed,
            query_modality=getattr(ev, "query_modality", None),
            corpus_modality=getattr(ev, "corpus_modality", None),
        )
    if hasattr(ev, "anchors") and hasattr(ev, "positives"):  # cross-modal pairs
        return RetrievalExamples.from_pairs(ev.anchors, ev.positives, seed=seed)
    modality = getattr(ev, "modality", None) or anchor
    if all(hasattr(ev, a) for a in ("train_items", "train_labels", "test_items", "test_labels")):  # a probe's split
        return RetrievalExamples.from_split(
            ev.train_items, ev.train_labels, ev.test_items, ev.test_labels, seed=seed, modality=modality
        )
    if hasattr(ev, "items") and hasattr(ev, "labels"):  # labelled items (kNN)
        return RetrievalExamples.from_items(ev.items, ev.labels, seed=seed, modality=modality)
    return None


def _from_rows(rows, anchor: str, seed: int) -> Optional[RetrievalExamples]:
    """The examples from the training rows: pairs, or items (labelled by a column or by class folders)."""
    anchors = rows.column("anchor")
    labels = rows.column("label") if rows.has_label else None
    if rows.has_positive:  # several data sets: the rows that have a positive
        positives = rows.column("positive")
        keep = [i for i, p in enumerate(positives) if p is not None and anchors[i] is not None]
        return RetrievalExamples.from_pairs(
            [anchors[i] for i in keep],
            [positives[i] for i in keep],
            [labels[i] for i in keep] if labels is not None else None,
            seed=seed,
        )
    source = "label"
    if labels is None:
        labels, source = folder_labels(anchors), "folder"
    return RetrievalExamples.from_items(anchors, labels, seed=seed, modality=anchor, label_source=source)

"""``anycl.fit``: choose adapters, encoders, sampler, loss and trainer from the arguments, then train.

Every part it wires is public, for users who want their own loop: :func:`anycl.data.to_rows`,
``anycl.adapters.get``, :class:`~anycl.model.ContrastiveModel`, ``anycl.samplers.get``,
``anycl.losses.get``, :func:`~anycl.data.column_spec.column_specs` (what the sampler and the batch builder
know about each column), :class:`~anycl.data.batching.BatchBuilder` and :class:`~anycl.training.Trainer`.
The options are :class:`anycl.options.fit_config.FitConfig`; the stages ``fit`` wires live in ``anycl.fitting.data``
(modalities, rows), ``anycl.fitting.loss`` (the loss), ``anycl.fitting.checks`` (the run's options, the output
folder, the training arguments), ``anycl.fitting.setup`` (model set-up, sampler, evaluator) and
``anycl.fitting.record`` (the record and files of a finished run).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Union

from accelerate.utils import set_seed

from anycl import adapters as adapter_registry
from anycl.data.multi import MultiRows
from anycl.data.views import check_multiview, view_counts
from anycl.fitting.checks import check_run_options, check_watch_options, training_args, watch_callbacks
from anycl.fitting.data import (
    SIDES,
    check_all_items,
    check_rows,
    file_extensions,
    file_reader,
    load_parts,
    resolve_modalities,
)
from anycl.fitting.distill import make_teacher, plan_distillation
from anycl.fitting.items import data_adapter_options, scan_items
from anycl.fitting.loss import check_batch_size, check_loss_data, choose_loss
from anycl.fitting.loss_data import check_teacher_width, with_teacher_embeddings
from anycl.fitting.memory import check_step_memory
from anycl.fitting.recipe import resolved_recipe, self_supervised, start_budget, step_budget
from anycl.fitting.record import record_run
from anycl.fitting.resume import check_resume, run_identity
from anycl.fitting.setup import (
    default_sampler_options,
    evaluate_widths,
    fit_prompts,
    make_evaluator,
    retrieval_examples,
    samplers_and_builders,
    set_up_model,
)
from anycl.model.build import model_for
from anycl.model.contrastive import ContrastiveModel, Tower, build_model  # noqa: F401  (anycl.api.build_model, as before)
from anycl.options.fit_config import FIT_OPTIONS, FitConfig  # noqa: F401  (also anycl.api.FIT_OPTIONS, as before)
from anycl.sampling.factory import loss_sampler
from anycl.training.trainer import Trainer

from .files import OutputLock

log = logging.getLogger("anycl")


def _fit(dataset: Any, modality: Any, cfg: FitConfig) -> ContrastiveModel:
    """``fit`` once its options are checked and its output_dir is locked."""
    sides = resolve_modalities(modality)
    exts = file_extensions(modality)
    parts, multi = load_parts(dataset, cfg, exts, file_reader(modality))
    anchor_cls = adapter_registry.ADAPTERS.lookup(sides["anchor"])
    fit_defaults = getattr(anchor_cls, "fit_defaults", {})  # per-modality defaults (batch size, lr, head)
    by_name = cfg.encoder is None and model_for(cfg.model, sides["anchor"], sides.values(), anchor_cls) is not None
    if by_name:
        fit_defaults = {**fit_defaults, **getattr(anchor_cls, "pretrained_fit_defaults", {})}  # audio: a fine-tuning lr
    plan = choose_loss(cfg, sides, anchor_cls, parts, multi)  # the loss, the guide and Matryoshka options
    prompts = fit_prompts(cfg, next(iter(parts.values())), sides)
    counts = view_counts(cfg.views, cfg.local_views)  # multi-view training: (V, L), or None
    check_multiview(counts, plan.loss_fn, next(iter(parts.values())), sides, anchor_cls, multi, cfg.guide)
    distill = plan_distillation(cfg, plan, multi, counts)  # teacher=: the loss wrapped (anycl.fitting.distill)
    check_batch_size(cfg.resolved_batch_size(fit_defaults), plan)
    check_loss_data(plan, parts)  # what each loss needs from its data (anycl.fitting.loss_data)
    check_watch_options(cfg)  # keep_best / early stopping need an evaluation (before the teacher embeds)
    evaluator = make_evaluator(cfg, sides, multi, exts, int(cfg.seed))  # its data checked before any model loads
    parts = {name: with_teacher_embeddings(plan.losses[name], part, sides["anchor"]) for name, part in parts.items()}
    rows = MultiRows(parts) if multi else parts[""]
    check_rows(rows, cfg, log)
    checkpoint = check_run_options(cfg)  # LoRA, checkpoints, resume_from, the output folder
    args = training_args(cfg, fit_defaults, step_budget(cfg, rows, anchor_cls))  # self-supervised: epochs from the data
    args.pretrained = by_name or bool(getattr(anchor_cls, "pretrained_default", False))  # a short run: INFO
    args.run_identity = run_identity(cfg, args, plan.name, plan.recorded_options(), sides, rows)
    check_resume(checkpoint, args.run_identity, bool(cfg.resume_force))  # the checkpoint's run is this one

    set_seed(args.seed)  # seeded, so heads start the same in every run
    model = build_model(
        sides,
        model=cfg.model,
        encoder=cfg.encoder,
        encoder_options=cfg.encoder_options,
        adapter_options=data_adapter_options(cfg, sides, parts),  # the user's, and what the items chose (a preset)
        head=cfg.head,
    )
    start_budget(model, args)  # from shipped starting weights: the whole step budget, however small the data
    guide = set_up_model(
        model,
        cfg,
        prompts,
        plan.matryoshka,
        lambda name: build_model({s: "text" for s in SIDES}, model=name, head=None),
    )
    check_teacher_width(model, parts)
    check_all_items(model, parts, plan.losses)  # every item, before training (streamed rows: as they are read)
    parts, dropped = scan_items(model, parts, cfg.on_bad_item)  # unreadable files found once, before training
    teacher, parts = make_teacher(cfg, plan, distill, model, sides, parts)  # the teacher opened; cached: rows
    if dropped or teacher is not None:
        rows = MultiRows(parts) if multi else parts[""]
    check_step_memory(  # a clear error, before the first step, when a step would not fit in memory
        model, rows, args.batch_size, args.cpu, counts, args.mixed_precision != "no", args.gradcache_mini_batch
    )
    args.resolved_recipe = resolved_recipe(model, rows, counts)  # logged in one line when training starts
    own = loss_sampler(plan.loss_fn, rows)  # a loss that pairs one column its own way (Contrastive Tension)
    sopts = default_sampler_options(cfg, fit_defaults, sides, self_supervised(rows), own)  # user's + the defaults
    sampler, builder, sopts = samplers_and_builders(
        cfg, model, parts, plan.losses, guide, prompts, multi, args.seed, sopts, args.mixed_precision
    )
    evaluate_widths(evaluator, model, plan.matryoshka)
    callbacks = watch_callbacks(cfg, evaluator, args.output_dir)
    examples = retrieval_examples(args.output_dir, sides, evaluator, rows, args.seed)
    if examples is not None:
        examples.snapshot(model, "before")
    trainer = Trainer(
        model,
        plan.loss_fn,
        rows,
        sampler,
        builder,
        args,
        evaluator=evaluator,
        callbacks=callbacks,
        guide=guide,
        teacher=teacher,
    )
    model = trainer.train()
    return record_run(
        model,
        trainer,
        cfg,
        plan,
        rows,
        callbacks,
        dataset=dataset,
        modality=modality,
        args=args,
        sampler_options=sopts,
        examples=examples,
        output_dir=args.output_dir,
    )


def fit(
    dataset: Any, modality: Union[str, Mapping[str, str], None] = None, *, config: Any = None, **overrides
) -> ContrastiveModel:
    """Train a contrastive encoder on ``dataset`` and return the :class:`ContrastiveModel`.

    Args:
        dataset: Hugging Face Dataset / DatasetDict / IterableDataset, list of dicts or raw items,
            pandas DataFrame, or a path (CSV, JSON Lines, JSON, Parquet, or a folder of files).
            Columns follow the convention in :mod:`anycl.data`.
        modality: ``"text"``, ``"audio"``, ``"image"`` (any registered adapter), or a mapping of sides to
            modalities for cross-modal pairs: ``{"anchor": "image", "positive": "text"}``.
        config: a :class:`~anycl.options.fit_config.FitConfig` (or a mapping of its options).
        **overrides: options of :class:`~anycl.options.fit_config.FitConfig` on top of ``config``, among them
            ``loss`` (a registered loss name, an ``nn.Module`` of embeddings, or ``None`` for the
            modality's default, InfoNCE). Unknown names are an error listing the valid ones.

    How long: ``epochs`` (default 1 for given pairs) or ``max_steps``. Data without pairs (a folder of clips or
    images, a list of items: each item's positive is another augmented view of it) given neither trains for
    enough epochs to reach 1000 optimiser steps, at most 100 epochs (from shipped starting weights, the default
    audio CNN's: exactly 1000 steps however small the data), in full batches only (the ``in_batch``
    sampler's ``drop_last``), evaluated (without ``eval_every``) about 10 times rather than after every epoch. A
    run of fewer than 100 steps is warned about, and one INFO line states the resolved recipe (encoder, window
    or crop, views, augmentations, batch size, epochs, steps) when training starts (:mod:`anycl.fitting.recipe`).

    Example::

        model = anycl.fit([{"anchor": "a cat", "positive": "a kitten"}, ...], modality="text")
        model.encode(["a query"])
    """
    cfg = FitConfig.build(config, overrides).validate()  # every number and mapping, before any model loads
    if not cfg.output_dir or int(os.environ.get("RANK", "0")) != 0:  # one lock per run: the main process holds it
        return _fit(dataset, modality, cfg)
    with OutputLock(cfg.output_dir):  # a second run on this output_dir refuses, naming this one (anycl.files)
        return _fit(dataset, modality, cfg)

"""``anycl.fit``: choose adapters, encoders, sampler, loss and trainer from the arguments, then train.

Every part it wires is public, for users who want their own loop: :func:`anycl.data.to_rows`,
``anycl.adapters.get``, :class:`~anycl.model.ContrastiveModel`, ``anycl.samplers.get``,
``anycl.losses.get``, :class:`~anycl.batching.BatchBuilder` and :class:`~anycl.training.Trainer`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from torch import nn

from . import adapters as adapter_registry
from . import sampling
from .data import check_items, to_rows
from .errors import ConfigError
from .model import ContrastiveModel, Tower, build_model
from .options import FIT_OPTIONS  # noqa: F401  (also anycl.api.FIT_OPTIONS, as before)
from .training import Trainer, TrainingArgs

log = logging.getLogger("anycl")

SIDES = ("anchor", "positive", "negative")



def _with_keep_best(o, evaluator, output_dir) -> list:
    """The user's callbacks, plus :class:`anycl.best.KeepBest` when ``keep_best`` names a metric (``True``:
    the evaluator's primary metric) and :class:`anycl.best.EarlyStopping` with ``early_stopping_patience``
    (watching ``early_stopping_metric``, else keep_best's metric, else the primary metric)."""
    from .best import EarlyStopping, KeepBest, watched_metric

    callbacks = list(o.get("callbacks") or ())
    if o.get("keep_best"):
        if evaluator is None:
            raise ConfigError("keep_best needs an eval_dataset (or a callable evaluator) to compare checkpoints")
        callbacks.append(KeepBest(watched_metric(o["keep_best"], evaluator, "keep_best"), output_dir=output_dir))
    if o.get("early_stopping_patience") is not None:
        if evaluator is None:
            raise ConfigError("early_stopping_patience needs an eval_dataset (or a callable evaluator) to watch")
        name = o.get("early_stopping_metric") or (o.get("keep_best") if isinstance(o.get("keep_best"), str) else None)
        callbacks.append(EarlyStopping(watched_metric(name, evaluator, "early_stopping_patience"),
                                       o["early_stopping_patience"]))
    return callbacks


def _resolve_modalities(modality, rows) -> Dict[str, str]:
    if modality is None:
        raise ConfigError(
            f"modality is required: one of {adapter_registry.names()}, or a mapping such as "
            f"{{'anchor': 'image', 'positive': 'text'}}"
        )
    if isinstance(modality, str):
        sides = {s: modality for s in SIDES}
    elif isinstance(modality, Mapping):
        unknown_sides = [s for s in modality if s not in SIDES]
        if unknown_sides:
            raise ConfigError(f"modality mapping names sides {unknown_sides}; the sides are {list(SIDES)}")
        if "anchor" not in modality:
            raise ConfigError("a modality mapping must name the 'anchor' side")
        sides = {"anchor": modality["anchor"]}
        sides["positive"] = modality.get("positive", sides["anchor"])
        sides["negative"] = modality.get("negative", sides["positive"])
    else:
        raise ConfigError(f"modality must be a name or a mapping of sides to names, got {type(modality).__name__}")
    for m in set(sides.values()):
        if not isinstance(m, str) or m not in adapter_registry.ADAPTERS:
            raise ConfigError(
                f"no adapter for modality {m!r}; registered modalities: {', '.join(adapter_registry.names())}"
                f" (add one with @anycl.adapters.register)"
            )
    return sides


def _training_width(tower: Tower) -> Optional[int]:
    """Width of the embeddings the loss sees from a tower (its head's output when it has one)."""
    if tower.head is not None:
        return int(tower.head.anycl_spec["out_dim"])
    return tower.adapter.embedding_dim(tower.encoder)


def _record_base_models(model, o) -> None:
    """``info["base_model"]`` ({modality: what training started from}) and the ``model:`` key of the run's
    config (the packaged default text model is written as its Hub id, which reruns offline too)."""
    bases = {}
    for name, tower in model.towers.items():
        spec = getattr(tower.encoder, "anycl_spec", None) or {}
        if spec.get("base_model"):
            bases[name] = spec["base_model"]
    model.info["base_model"] = bases
    cfg = model.info.get("config")
    if cfg is not None and cfg.get("model") is None and bases and o.get("encoder") is None:
        chosen = next(iter(bases.values())) if len(bases) == 1 and len(model.towers) == 1 else bases
        items = list(cfg.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "loss"), len(items))
        items.insert(at, ("model", chosen))
        cfg.clear()
        cfg.update(items)


def _retrieval_examples(output_dir, sides, evaluator, rows, seed: int):
    """With an output_dir and text pairs: the report's retrieval examples, searched before training."""
    if not output_dir or sides["anchor"] != "text" or sides["positive"] != "text" or os.environ.get("RANK", "0") != "0":
        return None
    from .evaluation import RetrievalEvaluator
    from .report_examples import RetrievalExamples

    if isinstance(evaluator, RetrievalEvaluator):
        return RetrievalExamples.pick(evaluator.queries, evaluator.corpus, evaluator.relevant, seed=seed)
    if rows.streaming or not rows.has_positive:
        return None
    return RetrievalExamples.from_pairs(rows.column("anchor"), rows.column("positive"), seed=seed)


def _configure_guide(o: Mapping[str, Any], loss_fn, loss) -> None:
    """Check the guide options against the loss before any model is loaded; set the loss's margin."""
    given = [k for k in ("guide_margin", "guide_margin_strategy") if o.get(k) is not None]
    if o.get("guide") is None:
        if (o.get("sampler_options") or {}).get("guide_filter"):
            raise ConfigError("sampler_options guide_filter needs fit(..., guide=...) (e.g. guide='start')")
        if given:
            raise ConfigError(f"{given} need guide= (e.g. guide='start'); without a guide nothing is masked")
        return
    name = getattr(loss_fn, "registry_name", loss)
    if not getattr(loss_fn, "accepts_guide", False):
        raise ConfigError(f"guide= needs a loss that uses a guide model (infonce); loss {name!r} does not")
    spec = o["guide"]
    if not (isinstance(spec, (str, os.PathLike)) or isinstance(spec, nn.Module) or type(spec).__name__ == "Guide"):
        raise ConfigError(f"guide must be 'start', a model path/name or an anycl ContrastiveModel, got "
                          f"{type(spec).__name__}")
    margin = o.get("guide_margin")
    strategy = o.get("guide_margin_strategy")
    loss_fn.configure_guide(0.0 if margin is None else margin, "absolute" if strategy is None else strategy)


def _prepare_output_dir(output_dir: Optional[str], overwrite: bool) -> None:
    if not output_dir:
        return
    from .files import LOCK_FILE

    p = Path(output_dir)
    if p.exists() and (not p.is_dir() or any(c.name != LOCK_FILE for c in p.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"output_dir {output_dir!r} already exists and is not empty; pass overwrite=True or choose "
                f"another folder (nothing was trained)"
            )
    from .model import _owned_entries

    model_dir = p / "model"
    if model_dir.is_dir() and _owned_entries(model_dir) is None:  # found now, not after training
        raise FileExistsError(f"{str(model_dir)!r} is a non-empty folder that anycl did not write, and the model "
                              f"would be saved there; move it or choose another output_dir (nothing was trained)")


def _fit(dataset: Any, modality: Union[str, Mapping[str, str], None], loss: Any, **options) -> ContrastiveModel:
    """``fit`` once its options are checked and its output_dir is locked."""
    o = dict(options)
    if isinstance(modality, str) and modality not in adapter_registry.ADAPTERS:
        raise ConfigError(
            f"no adapter for modality {modality!r}; registered modalities: {', '.join(adapter_registry.names())}"
        )
    exts = ()
    if isinstance(modality, str):
        exts = adapter_registry.ADAPTERS.lookup(modality).file_extensions
    from .config import open_dataset  # a Hugging Face dataset name → the dataset; paths stay paths

    from . import multi_dataset as md
    from .loss_data import build_losses, check_loss_rows, check_teacher_width, with_teacher_embeddings

    multi = md.is_multi_dataset(dataset)
    if multi:  # several data sets: {name: data set} (anycl.multi_dataset)
        names = [str(k) for k in dataset]
        cols = md.per_dataset(o.get("columns"), names)
        parts = {str(k): to_rows(open_dataset(d), cols[str(k)] if cols else o.get("columns"), exts,
                                   sep=o.get("sep"))
                 for k, d in dataset.items()}
        rows = next(iter(parts.values()))
    else:
        rows = to_rows(open_dataset(dataset), o.get("columns"), exts, sep=o.get("sep"))
        parts = {"": rows}
    sides = _resolve_modalities(modality, rows)
    anchor_adapter_cls = adapter_registry.ADAPTERS.lookup(sides["anchor"])
    defaults = dict(getattr(anchor_adapter_cls, "fit_defaults", {}))

    # -- the loss ------------------------------------------------------------------------------------
    per_options = md.per_dataset(o.get("loss_options"), list(parts)) if multi else None  # {data set: {...}}
    loss_options = {} if per_options else dict(o.get("loss_options") or {})
    if o.get("temperature") is not None:
        loss_options["temperature"] = o["temperature"]
    from .multiview import default_loss as multiview_default_loss  # views= without loss=: multiview_infonce

    loss = multiview_default_loss(o, loss, loss_options, anchor_adapter_cls)
    if o.get("probe") is not None:  # the probe's options, checked before any model loads (anycl.probe)
        from .probe import probe_options

        probe_options(o["probe"])
    cross_modal = len(set(sides.values())) > 1
    if loss is None and cross_modal:  # CLIP/CLAP: both directions, CLIP's initial temperature, learnt
        loss = "infonce"
        loss_options.setdefault("symmetric", True)
        loss_options.setdefault("temperature", 0.07)
        loss_options.setdefault("learn_temperature", True)
    elif loss is None:
        loss = anchor_adapter_cls.default_loss
        for k, v in anchor_adapter_cls.default_loss_options.items():
            loss_options.setdefault(k, v)
    losses = build_losses(loss, loss_options, parts, multi, per_options)  # {data set: loss module}
    loss_fn = md.MultiLoss(losses) if multi else losses[""]

    _configure_guide(o, loss_fn, loss)

    matryoshka = None
    if o.get("matryoshka_dims") is not None:  # the width is checked once the model is built
        from .losses.matryoshka import MatryoshkaLoss, check_dims

        matryoshka = check_dims(o["matryoshka_dims"], o.get("matryoshka_weights"))
        loss_fn = MatryoshkaLoss(loss_fn, *matryoshka)
    elif o.get("matryoshka_weights") is not None:
        raise ConfigError("matryoshka_weights needs matryoshka_dims")
    from .prompts import resolve_fit_prompts

    mines = o.get("sampler") == "mined" or bool(getattr(o.get("sampler"), "num_negatives", 0))
    prompts = resolve_fit_prompts(o.get("prompts"), rows.columns, o.get("columns"), sides, mined_negatives=mines)
    include_prompt = o.get("include_prompt", True)
    if not isinstance(include_prompt, bool):
        raise ConfigError(f"include_prompt must be True or False, got {include_prompt!r}")
    if not include_prompt and "text" not in sides.values():
        raise ConfigError("include_prompt applies to text towers; this model has none")

    from .multiview import check_multiview  # views=/local_views=: refused set-ups, before any model loads

    check_multiview(o, loss_fn, rows, sides, anchor_adapter_cls, multi)
    # -- options ------------------------------------------------------------------------------------
    batch_size = int(o.get("batch_size", defaults.get("batch_size", 32)))
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size < 2 and getattr(loss_fn, "in_batch_negatives", True):
        raise ConfigError(
            f"batch_size={batch_size} leaves no in-batch negatives for loss {getattr(loss_fn, 'registry_name', loss)!r}; "
            f"use batch_size >= 2 (the other items of a batch are each anchor's negatives)"
        )
    # -- what each loss needs from its data (anycl.loss_data); distillation: the teacher's embeddings --------
    for name, part in parts.items():
        check_loss_rows(losses[name], part, loss, name or None)
    if o.get("keep_best") and o.get("eval_dataset") is None:  # before the teacher embeds anything
        raise ConfigError("keep_best needs an eval_dataset (or a callable evaluator) to compare checkpoints")
    if o.get("early_stopping_patience") is not None:
        if o.get("eval_dataset") is None:
            raise ConfigError("early_stopping_patience needs an eval_dataset (or a callable evaluator) to watch")
        from .best import EarlyStopping

        EarlyStopping("-", o["early_stopping_patience"])  # a bad patience fails before any model is loaded
    parts = {name: with_teacher_embeddings(losses[name], part, sides["anchor"]) for name, part in parts.items()}
    rows = md.MultiRows(parts) if multi else parts[""]
    if not rows.streaming and len(rows) < 2:
        raise ConfigError(f"the dataset has {len(rows)} row; contrastive training needs at least 2")
    if rows.streaming and not o.get("max_steps") and o.get("epochs") is None:
        log.info("streamed dataset: training for 1 epoch over the stream (set max_steps or epochs to change)")
    output_dir = o.get("output_dir")
    if o.get("peft"):  # before any model is loaded
        from .lora import check_options

        check_options(o["peft"])
    if o.get("checkpoint_every") and not output_dir:
        raise ConfigError("checkpoint_every needs output_dir (checkpoints go to output_dir/checkpoints)")
    if o.get("resume_from") is not None:
        from .checkpoint import resolve_resume

        resolve_resume(o["resume_from"], output_dir)  # a bad path fails before any model is loaded
    _prepare_output_dir(output_dir, bool(o.get("overwrite", False)) or o.get("resume_from") is not None)

    args = TrainingArgs(
        batch_size=batch_size,
        epochs=int(o.get("epochs", 1) if o.get("epochs") is not None else 1),
        max_steps=o.get("max_steps"),
        lr=float(o.get("lr", defaults.get("lr", 2e-5))),
        weight_decay=float(o.get("weight_decay", 0.01)),
        warmup_ratio=float(o.get("warmup_ratio", 0.1)),
        lr_schedule=o.get("lr_schedule") or "cosine",
        max_grad_norm=o.get("max_grad_norm", 1.0),
        mixed_precision=o.get("mixed_precision") or "no",
        gradient_accumulation_steps=int(o.get("gradient_accumulation_steps", 1)),
        seed=int(o.get("seed", 42)),
        output_dir=output_dir,
        log_with=o.get("log_with", "tensorboard"),
        log_every=int(o["log_every"]) if o.get("log_every") is not None else None,
        eval_every=o.get("eval_every"),
        num_workers=int(o.get("num_workers", 0)),
        progress=bool(o.get("progress", True)),
        cpu=bool(o.get("cpu", False)),
        gradcache_mini_batch=o.get("gradcache_mini_batch"),
        checkpoint_every=o.get("checkpoint_every"),
        resume_from=o.get("resume_from"),
        keep_checkpoints=o.get("keep_checkpoints", 2),
    )
    if args.gradcache_mini_batch is not None:  # validate before any model is loaded
        from .gradcache import GradCache

        GradCache(args.gradcache_mini_batch)
    if args.gradient_accumulation_steps < 1:
        raise ConfigError("gradient_accumulation_steps must be >= 1")
    if args.epochs < 1 and not args.max_steps:
        raise ConfigError("epochs must be >= 1 (or give max_steps)")

    # -- model (seeded, so heads start the same in every run) -----------------------------------------
    from accelerate.utils import set_seed

    set_seed(args.seed)
    model = build_model(sides, model=o.get("model"), encoder=o.get("encoder"),
                        encoder_options=o.get("encoder_options"), adapter_options=o.get("adapter_options"),
                        head=o.get("head", "default"))
    if matryoshka is not None:
        from .losses.matryoshka import check_dims

        check_dims(*matryoshka, width=_training_width(model.tower("anchor")))
    model.prompts = prompts
    if not include_prompt:  # sentence-transformers' Pooling(include_prompt=False): saved in its config
        for t in model.towers.values():
            if getattr(t.encoder, "st", None) is not None:
                t.encoder.st.set_pooling_include_prompt(False)
    if o.get("freeze"):
        from .crossmodal import freeze

        freeze(model, o["freeze"])
    guide = None
    if o.get("guide") is not None:  # anycl.guide: a frozen model scoring each batch for false negatives
        from .guide import make_guide

        guide = make_guide(o["guide"], model, lambda name: build_model({s: "text" for s in SIDES}, model=name,
                                                                       head=None))
    if o.get("peft"):  # anycl.lora: LoRA layers injected in place, base weights frozen
        from .lora import apply_lora

        lora_params = apply_lora(model, o["peft"])
        log.info("LoRA: %s trainable adapter parameters", ", ".join(f"{k} {v:,}" for k, v in lora_params.items()))
    check_teacher_width(model, parts)
    side_adapters = {s: model.tower(s).adapter for s in SIDES}
    validators = {"anchor": side_adapters["anchor"].validate, "positive": side_adapters["positive"].validate}
    from .data import check_score

    part_validators = {}
    for name, part in parts.items():
        part_validators[name] = dict(validators)
        for c in part.negatives:
            part_validators[name][c] = side_adapters["negative"].validate
        for c in getattr(losses[name], "score_columns", ()) or ():  # the numbers the loss reads
            part_validators[name][c] = check_score
        check_items(part, part_validators[name])

    # -- sampler, batches, evaluation -----------------------------------------------------------------
    sopts = dict(o.get("sampler_options") or {})
    sopts.setdefault("seed", args.seed)
    samplers, builders = {}, {}
    for name, part in parts.items():
        samplers[name], builders[name] = sampling.sampler_and_builder(o, sopts, part, side_adapters, losses[name],
                                                                          guide, prompts)
    if multi:
        sampler = md.MultiDatasetSampler(samplers, o.get("multi_dataset_sampling") or "proportional", args.seed)
        builder = md.MultiBatchBuilder(builders)
    else:
        sampler, builder = samplers[""], builders[""]
    from .multiview import multiview_builder  # views=/local_views=: multi-view batches (anycl.multiview)

    builder = multiview_builder(o, builder)
    eval_data = o.get("eval_dataset")
    if cross_modal and eval_data is not None and not callable(eval_data):
        from .crossmodal import CrossModalRetrievalEvaluator

        eval_rows = to_rows(eval_data, o.get("columns"))
        if not eval_rows.has_positive:
            raise ConfigError("a cross-modal eval_dataset needs aligned (anchor, positive) pairs")
        evaluator = CrossModalRetrievalEvaluator(eval_rows.column("anchor"), eval_rows.column("positive"))
    elif o.get("probe") is not None:  # kNN (+ linear) probe on labelled items (anycl.probe)
        from .probe import probe_evaluator

        evaluator = probe_evaluator(eval_data, o["probe"], o.get("columns"), exts, args.seed)
    else:
        from .evaluators import build_evaluator

        evaluator = build_evaluator(eval_data, o.get("eval_kind"), o.get("columns") if not multi else None,
                                    file_extensions=exts, seed=args.seed)

    if matryoshka is not None and hasattr(evaluator, "truncate_dims"):  # metrics at every trained width
        evaluator.truncate_dims = [d for d in matryoshka[0] if d < (model.embedding_width() or 0)]
    callbacks = _with_keep_best(o, evaluator, output_dir)  # user callbacks (+ anycl.best.KeepBest)
    watch = o.get("collapse_watch", True)
    if watch:  # anycl.collapse: embedding spread logged, a warning when it falls toward collapse
        from .collapse import CollapseWatch

        callbacks.append(watch if isinstance(watch, CollapseWatch) else
                         CollapseWatch(**(watch if isinstance(watch, dict) else {})))
    examples = _retrieval_examples(output_dir, sides, evaluator, rows, args.seed)
    if examples is not None:
        examples.snapshot(model, "before")
    trainer = Trainer(model, loss_fn, rows, sampler, builder, args, evaluator=evaluator,
                      callbacks=callbacks, guide=guide)
    trainer.validators = part_validators[""] if rows.streaming else None
    model = trainer.train()
    if o.get("peft"):
        from .lora import check_options, merge_lora

        if check_options(o["peft"])["merge"]:
            merge_lora(model)  # a plain model from here on: saved and exported like any other
    model.info.update({
        "loss": getattr(loss_fn, "registry_name", type(loss_fn).__name__),
        "loss_options": {k: v for k, v in loss_options.items() if isinstance(v, (int, float, str, bool))},
        "train_rows": None if rows.streaming else len(rows),
        "steps": trainer.global_step,
        "final_metrics": trainer.eval_history[-1] if trainer.eval_history else None,
        "baseline_metrics": trainer.eval_history[0] if len(trainer.eval_history) > 1
        and trainer.eval_history[0].get("step") == 0 else None,
    })
    if matryoshka is not None:
        model.info["matryoshka"] = {"dims": matryoshka[0], "weights": matryoshka[1]}
    if o.get("peft"):
        from .lora import check_options

        model.info["peft"] = {k: v for k, v in check_options(o["peft"]).items() if v is not None}
    from .card import _COMMAND

    if _COMMAND[0]:
        model.info["command"] = _COMMAND[0]
    for cb in callbacks:
        if getattr(cb, "stopped_step", None) is not None:  # anycl.best.EarlyStopping ended the run
            model.info["early_stopping"] = {"metric": cb.metric, "best": cb.best, "best_step": cb.best_step,
                                            "stopped_step": cb.stopped_step}
    # -- the run's record: resolved config (saved with the model), report and model card (anycl/report.py,
    #    anycl/card.py) --------------------------------------------------------------------------------
    from .config import resolved_config

    model.info["config"] = resolved_config(
        dataset, modality, loss, options, args=args, loss_name=model.info["loss"],
        loss_options=o["loss_options"] if per_options else loss_options,
        sampler_options=sopts if isinstance(o.get("sampler") or "in_batch", str) else None)
    _record_base_models(model, o)
    model.trainer = trainer  # history and evaluation results for the caller (not saved)
    if output_dir and (trainer.accelerator is None or trainer.accelerator.is_main_process):  # once, not per process
        from .config import CONFIG_FILE, config_file_text
        from .report import write_report

        model.save(os.path.join(output_dir, "model"), overwrite=True)
        (Path(output_dir) / CONFIG_FILE).write_text(config_file_text(model.info["config"]))
        write_report(output_dir, model, trainer, rows, model.info["config"], seed=args.seed, examples=examples)
    return model


def fit(dataset: Any, modality: Union[str, Mapping[str, str], None] = None, loss: Any = None,
        **options) -> ContrastiveModel:
    """Train a contrastive encoder on ``dataset`` and return the :class:`ContrastiveModel`.

    Args:
        dataset: Hugging Face Dataset / DatasetDict / IterableDataset, list of dicts or raw items,
            pandas DataFrame, or a path (CSV, JSON Lines, JSON, Parquet, or a folder of files).
            Columns follow the convention in :mod:`anycl.data`.
        modality: ``"text"``, ``"audio"``, ``"image"`` (any registered adapter), or a mapping of sides to
            modalities for cross-modal pairs: ``{"anchor": "image", "positive": "text"}``.
        loss: a registered loss name, an ``nn.Module`` of embeddings, or ``None`` for the modality's
            default (InfoNCE).
        **options: see ``anycl.api.FIT_OPTIONS`` (unknown names are an error listing the valid ones).

    Example::

        model = anycl.fit([{"anchor": "a cat", "positive": "a kitten"}, ...], modality="text")
        model.encode(["a query"])
    """
    unknown = sorted(set(options) - set(FIT_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown fit option(s) {unknown}; valid options: {', '.join(sorted(FIT_OPTIONS))}")
    from .validation import validate_options

    validate_options(options)  # every number and mapping, before any model is loaded (anycl.validation)
    output_dir = options.get("output_dir")
    if not output_dir or int(os.environ.get("RANK", "0")) != 0:  # one lock per run: the main process holds it
        return _fit(dataset, modality, loss, **options)
    from .files import OutputLock

    with OutputLock(output_dir):  # a second run on this output_dir refuses, naming this one (anycl.files)
        return _fit(dataset, modality, loss, **options)

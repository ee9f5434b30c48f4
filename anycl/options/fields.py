"""The fields of :class:`anycl.options.fit_config.FitConfig`: every option of :func:`anycl.fit` with its default, its
help text, the metavar and the default ``anycl fit --help`` shows, and whether a shell can give it at all.
:class:`~anycl.options.fit_config.FitConfig` adds the behaviour (building, validation, resolved values, files)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:  # the types of options that are Python objects of higher layers (annotations only)
    from torch import nn

    from anycl.sampling.base import Sampler
    from anycl.training.collapse import CollapseWatch
    from anycl.training.guide import Guide

PathLike = Union[str, "os.PathLike[str]"]  # a folder or file: a string or a pathlib.Path
DEFAULT_RUNS = "anycl-runs"  # where `anycl fit` writes a run without --output-dir
PER_MODALITY = "per modality: text {t}, image {i}, audio {a}"


def _opt(
    default: Any,
    help: str,
    metavar: str = "VALUE",
    shown: Optional[str] = None,
    *,
    shell: bool = True,
    option: bool = True,
):
    """A field with its command-line documentation: ``metavar`` and the ``shown`` default of ``--help``;
    ``shell=False``: a Python object no command line can give; ``option=False``: an argument of fit (loss)."""
    return field(
        default=default,
        metadata={
            "help": help,
            "metavar": metavar,
            "shown": str(default) if shown is None else shown,
            "shell": shell,
            "option": option,
        },
    )


@dataclass
class FitFields:
    """The fields of :class:`anycl.options.fit_config.FitConfig`: each option with its type, default and
    documentation. The types say what a caller may give; values from a command line or a config file may
    also be their string or float spellings (``"16"``, ``16.0``), which :mod:`anycl.options.validation`
    accepts where it says so and the stages convert."""

    loss: Union[str, nn.Module, Mapping[str, Union[str, nn.Module]], None] = _opt(
        None,
        "a registered loss name, an nn.Module of embeddings, or None for the modality's default (InfoNCE)",
        "NAME",
        "the modality's (text, image and audio: infonce)",
        option=False,
    )
    model: Union[str, Mapping[str, str], None] = _opt(
        None,
        "a pretrained model's Hub name or folder: text, a sentence-transformers model (default: packaged "
        "all-MiniLM-L6-v2; from Python also a SentenceTransformer object, trained in place); audio, a "
        "transformers wav2vec2 / HuBERT / WavLM / AST / Whisper / CLAP model "
        "(default: anycl's own CNN, trained from scratch); image, torchvision/<arch>, timm/<name> or a transformers "
        "ViT / DINOv2 / CLIP model, with its pretrained weights (encoder_options pretrained: false for none)",
        "NAME|PATH",
        "sentence-transformers/all-MiniLM-L6-v2 (packaged, offline) for text; none for audio and images",
    )
    encoder: Union[nn.Module, Mapping[str, nn.Module], None] = _opt(
        None, "an nn.Module, or {modality: nn.Module}, used instead of the modality's default encoder", shell=False
    )
    encoder_options: Optional[Mapping[str, Any]] = _opt(
        None, "keyword arguments for the default encoder ({modality: {...}} with several)", "JSON", "{}"
    )
    adapter_options: Optional[Mapping[str, Any]] = _opt(
        None, "keyword arguments for the adapter ({modality: {...}} with several)", "JSON", "{}"
    )
    head: Union[str, int, None] = _opt(
        "default",
        "projection head: None (none), 'mlp', or an int output width (MLP head of that width)",
        "none|mlp|WIDTH",
        PER_MODALITY.format(t="none", i="mlp", a="mlp") + "; cross-modal 256",
    )
    columns: Optional[Mapping[str, Any]] = _opt(  # {convention name: yours}, or {data set: {...}} with several
        None,
        "map the convention's names to yours, e.g. {'anchor': 'query', 'positive': 'doc'}",
        "JSON",
        "the convention's names",
    )
    loss_options: Optional[Mapping[str, Any]] = _opt(
        None, "keyword arguments for the loss", "JSON", "the loss's own defaults"
    )
    temperature: Optional[float] = _opt(
        None, "the loss temperature (for losses that have one)", "T", "the loss's default (text InfoNCE 0.05)"
    )
    sampler: Union[str, Sampler, None] = _opt(
        None,
        "a sampler name or Sampler object (default 'in_batch'; 'group_by_label': >= 2 items per label in a batch)",
        "NAME",
        "in_batch",
    )
    sampler_options: Optional[Mapping[str, Any]] = _opt(None, "keyword arguments for the sampler", "JSON", "{}")
    recipe: Optional[str] = _opt(
        None,
        "a named bundle of options measured together (anycl.options.recipes): 'hard-negatives' (mined, "
        "3 negatives per row); options you also pass win",
        "NAME",
        "none",
    )
    batch_size: Optional[int] = _opt(
        None,
        "pairs per process per step",
        "N",
        PER_MODALITY.format(t=32, i="256 (64 from a named backbone model=)", a="64 (32 from a pretrained model=)")
        + "; larger than the data: the data's size",
    )
    epochs: Optional[int] = _opt(
        None,
        "passes over the data; default: 1 for given pairs, and for data without pairs (self-supervised: "
        "augmented views) enough for 1000 optimiser steps, at most 100 (from shipped starting weights: exactly 1000 "
        "steps; anycl.fitting.recipe)",
        "N",
        "1 for pairs; self-supervised: ceil(1000 / steps per epoch), at most 100",
    )
    max_steps: Optional[int] = _opt(
        None,
        "stop after this many optimiser steps (needed for streamed data of unknown length); wins over epochs",
        "N",
        "none (epochs decide)",
    )
    lr: Optional[float] = _opt(
        None,
        "peak learning rate",
        "LR",
        PER_MODALITY.format(
            t="2e-5", i="1e-3 (1e-4 from a named backbone model=)", a="1e-3 (5e-5 from a pretrained model=)"
        ),
    )
    weight_decay: float = _opt(0.01, "AdamW weight decay", "W")
    warmup_ratio: float = _opt(0.1, "fraction of steps for linear warm-up before the decay", "R")
    lr_schedule: Optional[str] = _opt(
        None,
        "after warm-up: 'cosine' decay to 0, 'linear' decay to 0, or 'constant'",
        "cosine|linear|constant",
        "per modality: text constant, image cosine, audio cosine",
    )
    max_grad_norm: Optional[float] = _opt(1.0, "gradient clipping (None: off)", "NORM|none")
    mixed_precision: Optional[str] = _opt(
        None,
        "'auto' (bf16 autocast where the GPU or CPU computes in bf16, else fp32), 'no' (fp32), 'bf16' or 'fp16'",
        "auto|no|bf16|fp16",
        "auto",
    )
    gradient_accumulation_steps: int = _opt(1, "optimiser step every N batches (adds no negatives)", "N")
    seed: int = _opt(42, "seed for weights, shuffling, augmentation and dropout", "N")
    output_dir: Optional[PathLike] = _opt(
        None, "folder for logs and the final model (model/ inside)", "DIR", f"{DEFAULT_RUNS}/run-N (the first free N)"
    )
    overwrite: bool = _opt(False, "allow an existing, non-empty output_dir", "", "off")
    eval_dataset: Any = _opt(  # any data anycl.data.to_rows reads ({"train", "test"} for probe=), or callable(model)
        None,
        "pairs (retrieval metrics), scored pairs (STS), labelled items (kNN accuracy) or a callable(model)",
        "DATA",
        "none",
    )
    eval_every: Optional[int] = _opt(
        None,
        "evaluate every N steps (default: after each epoch)",
        "N",
        "after each epoch (and always once before training)",
    )
    probe: Union[bool, Mapping[str, Any], None] = _opt(
        None,
        "True or {k, temperature, linear, test_fraction, batch_size}: kNN (+ linear) probe of a "
        "labelled eval_dataset (or {'train': ..., 'test': ...}) at each evaluation (anycl.evaluation.probe)",
        "true|JSON",
        "off",
    )
    views: Optional[int] = _opt(
        None,
        "global views per item (>= 2) for multi-view training; default None: pairwise (anycl.data.views)",
        "V",
        "none (pairwise)",
    )
    local_views: Optional[int] = _opt(
        None,
        "local views per item (image crops of local_size, audio windows of local_seconds); "
        "needs a multi-view loss (multiview_infonce, dino)",
        "L",
        "0",
    )
    keep_best: Union[str, bool, None] = _opt(
        None,
        "metric name (e.g. 'ndcg@10'), or True for the evaluation's primary metric: keep the "
        "weights of the best evaluation (needs eval_dataset)",
        "METRIC",
        "off",
    )
    eval_kind: Optional[str] = _opt(
        None,
        "evaluation kind: None (from the columns: score → sts, pairs → retrieval, labels → "
        "knn) or a registered evaluator's name (anycl.evaluation.names(), e.g. 'triplet', "
        "'reranking', 'classification': kNN + linear probe)",
        "KIND",
        "from the columns",
    )
    early_stopping_patience: Optional[int] = _opt(
        None, "stop after this many evaluations without improvement of the watched metric", "N", "off"
    )
    early_stopping_metric: Optional[str] = _opt(
        None,
        "the metric early stopping watches (default: keep_best's, else the evaluation's primary)",
        "METRIC",
        "keep_best's, else the evaluation's primary metric",
    )
    multi_dataset_sampling: Optional[str] = _opt(
        None,
        "several data sets ({name: data}): 'proportional' (default) or 'round_robin' batches",
        "proportional|round_robin",
        "proportional",
    )
    callbacks: Optional[Sequence[Any]] = _opt(
        None, "objects with on_step_end/on_evaluate/on_train_end, or callables(trainer, step, logs)", shell=False
    )
    num_workers: int = _opt(0, "DataLoader worker processes for loading/augmenting", "N")
    on_bad_item: Optional[str] = _opt(
        None, "'raise' (default) or 'skip' unreadable items, reporting the count", "raise|skip", "raise"
    )
    log_with: Union[str, Sequence[str], None] = _opt(
        "tensorboard", "Accelerate tracker(s) used when output_dir is set (default 'tensorboard')", "TRACKER"
    )
    log_every: Optional[int] = _opt(
        None,
        "log (trackers, report, collapse watch) every N steps (default: about 100 points per run)",
        "N",
        "about 100 points per run",
    )
    progress: bool = _opt(True, "show the progress bar", "true|false", "true (--quiet: false)")
    cpu: bool = _opt(False, "train on the CPU even when a GPU is present", "", "off")
    gradcache_mini_batch: Optional[int] = _opt(
        None, "GradCache: rows embedded at once (full-batch gradients at mini-batch memory; None: off)", "N", "off"
    )
    collapse_watch: Union[bool, Mapping[str, Any], CollapseWatch] = _opt(
        True,
        "warn when embeddings collapse (default True; False, or a dict of CollapseWatch options)",
        "true|false|JSON",
        "true",
    )
    checkpoint_every: Optional[int] = _opt(
        None, "save a checkpoint to output_dir/checkpoints every N optimiser steps", "N", "off"
    )
    resume_from: Union[PathLike, bool, None] = _opt(  # True: "latest"
        None, "'latest' (the newest checkpoint in output_dir, if any) or a checkpoint folder", "latest|DIR", "none"
    )
    resume_force: bool = _opt(
        False,
        "resume even when the run's options differ from those of the checkpoint (model, loss, batch size, data size)",
        "",
        "off",
    )
    keep_checkpoints: Optional[int] = _opt(2, "complete checkpoints kept (default 2; None: all)", "N|none")
    peft: Union[bool, Mapping[str, Any], None] = _opt(
        None,
        "LoRA through peft: {'r': 16, 'alpha': 32, 'target_modules': [...], 'merge': True} (anycl.model.lora)",
        "JSON",
        "off (full fine-tuning)",
    )
    freeze: Union[str, Sequence[str], Mapping[str, str], None] = _opt(
        None,
        "towers to keep fixed: a modality, a list, or {modality: 'all'|'encoder'} ('encoder' trains the head)",
        "MODALITY|JSON",
        "none",
    )
    guide: Union[PathLike, nn.Module, Guide, None] = _opt(
        None,
        "guided false-negative masking (GISTEmbed): 'start' (a frozen copy of the starting model), "
        "a sentence-transformers/anycl model path or name, or a ContrastiveModel (default None: "
        "off)",
        "start|NAME|PATH",
        "off",
    )
    guide_margin: Optional[float] = _opt(
        None,
        "with guide: mask candidates the guide rates above its anchor-positive score minus this (default 0)",
        "M",
        "0",
    )
    guide_margin_strategy: Optional[str] = _opt(
        None,
        "with guide: 'absolute' (score - margin, default) or 'relative' (score - |score|*margin)",
        "absolute|relative",
        "absolute",
    )
    teacher: Union[PathLike, nn.Module, None] = _opt(
        None,
        "distillation from a teacher of the student's modality: an anycl model (folder or object), a backbone "
        "or model name as model= takes (torchvision/<arch>, timm/<name>, a transformers model), or an nn.Module; "
        "the student learns its features of the same views through a projection (default None: off)",
        "NAME|PATH",
        "off",
    )
    distill_weight: Optional[float] = _opt(
        None,
        "with teacher: the distillation term's weight added to the contrastive loss (0: off; default 1; "
        "loss='distill' trains with distillation alone)",
        "W",
        "1 with a teacher",
    )
    teacher_options: Optional[Mapping[str, Any]] = _opt(
        None,
        "with teacher: {'cache': False (True: the teacher embeds each item once, unaugmented, reused every "
        "epoch), 'projection': 'linear'|'mlp', 'batch_size': 64}",
        "JSON",
        "cache off, linear projection",
    )
    sep: Optional[str] = _opt(
        None,
        "field separator of a CSV/TSV dataset file (default: ',' / tab, or sniffed when clearly ';', tab or '|')",
        "SEP",
        "',' for .csv, tab for .tsv, or sniffed when clearly ';', tab or '|'",
    )
    prompts: Optional[Mapping[str, str]] = _opt(
        None,
        "text put before a column's items, keyed by column: {'anchor': 'query: ', 'positive': "
        "'passage: '} (training, evaluation, mining, encode_query/encode_document; saved with "
        "the model)",
        "JSON",
        "none",
    )
    include_prompt: bool = _opt(
        True,
        "text: whether prompt tokens count in mean pooling (default True; False excludes them)",
        "true|false",
        "true",
    )
    matryoshka_dims: Optional[Sequence[int]] = _opt(
        None,
        "train prefixes of the embedding too, e.g. [384, 256, 128, 64] (strictly "
        "descending; encode(truncate_dim=64) then gives a usable 64-d embedding)",
        "JSON",
        "off",
    )
    matryoshka_weights: Optional[Sequence[float]] = _opt(
        None, "one weight per matryoshka_dims entry (default all 1)", "JSON", "all 1"
    )

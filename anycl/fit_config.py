"""``FitConfig``: every option of :func:`anycl.fit` in one typed dataclass.

Each field carries its default, its help text, the metavar and the default the command line shows
(``anycl fit --help`` is generated from these), and whether a shell can give it at all. ``fit`` builds one
from its keyword arguments; the command line from its flags and config file; the resolved config of a run
(``config.yaml``) is written from it. Validation is :func:`anycl.validation.validate_options`::

    cfg = FitConfig(batch_size=16, lr=1e-4)
    anycl.fit(pairs, "text", config=cfg, epochs=2)           # keyword arguments override the config
    FitConfig.from_yaml(cfg.to_yaml()) == cfg                 # YAML and JSON round trips

Several defaults depend on the modality (the anchor adapter's ``fit_defaults``: text batch 32, lr 2e-5 and a
constant learning rate after warm-up, image 256 and 1e-3, audio 64 and 1e-3, both with cosine decay); those
fields default to ``None`` (or ``"default"`` for ``head``) and
:meth:`FitConfig.training_values` fills them in. The config remembers which options were given, because a
run's record lists what it was given plus what it resolved, not every default.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

import yaml

from .errors import ConfigError
from .recipes import RECIPES, apply_recipe
from .validation import validate_options

DEFAULT_RUNS = "anycl-runs"  # where `anycl fit` writes a run without --output-dir
PER_MODALITY = "per modality: text {t}, image {i}, audio {a}"
# the option names whose resolved values TrainingArgs receives (and the run's config records)
TRAINING_KEYS = (
    "batch_size",
    "epochs",
    "max_steps",
    "lr",
    "weight_decay",
    "warmup_ratio",
    "lr_schedule",
    "max_grad_norm",
    "mixed_precision",
    "gradient_accumulation_steps",
    "seed",
    "log_every",
    "eval_every",
    "num_workers",
)


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
class FitConfig:
    """The options of :func:`anycl.fit` (see each field's help, or ``anycl fit --help``)."""

    loss: Any = _opt(
        None,
        "a registered loss name, an nn.Module of embeddings, or None for the modality's default (InfoNCE)",
        "NAME",
        "the modality's (text, image and audio: infonce)",
        option=False,
    )
    model: Any = _opt(
        None,
        "text: a sentence-transformers model path or name (default: packaged all-MiniLM-L6-v2)",
        "NAME|PATH",
        "sentence-transformers/all-MiniLM-L6-v2 (packaged, offline) for text",
    )
    encoder: Any = _opt(
        None, "an nn.Module, or {modality: nn.Module}, used instead of the modality's default encoder", shell=False
    )
    encoder_options: Any = _opt(
        None, "keyword arguments for the default encoder ({modality: {...}} with several)", "JSON", "{}"
    )
    adapter_options: Any = _opt(
        None, "keyword arguments for the adapter ({modality: {...}} with several)", "JSON", "{}"
    )
    head: Any = _opt(
        "default",
        "projection head: None (none), 'mlp', or an int output width (MLP head of that width)",
        "none|mlp|WIDTH",
        PER_MODALITY.format(t="none", i="mlp", a="mlp") + "; cross-modal 256",
    )
    columns: Any = _opt(
        None,
        "map the convention's names to yours, e.g. {'anchor': 'query', 'positive': 'doc'}",
        "JSON",
        "the convention's names",
    )
    loss_options: Any = _opt(None, "keyword arguments for the loss", "JSON", "the loss's own defaults")
    temperature: Any = _opt(
        None, "the loss temperature (for losses that have one)", "T", "the loss's default (text InfoNCE 0.05)"
    )
    sampler: Any = _opt(
        None,
        "a sampler name or Sampler object (default 'in_batch'; 'group_by_label': >= 2 items per label in a batch)",
        "NAME",
        "in_batch",
    )
    sampler_options: Any = _opt(None, "keyword arguments for the sampler", "JSON", "{}")
    recipe: Any = _opt(
        None,
        "a named bundle of options measured together (anycl.recipes): 'hard-negatives' (mined, "
        "3 negatives per row); options you also pass win",
        "NAME",
        "none",
    )
    batch_size: Any = _opt(
        None,
        "pairs per process per step",
        "N",
        PER_MODALITY.format(t=32, i=256, a=64) + "; larger than the data: the data's size",
    )
    epochs: Any = _opt(None, "passes over the data", "N", "1")
    max_steps: Any = _opt(
        None,
        "stop after this many optimiser steps (needed for streamed data of unknown length)",
        "N",
        "none (epochs decide)",
    )
    lr: Any = _opt(None, "peak learning rate", "LR", PER_MODALITY.format(t="2e-5", i="1e-3", a="1e-3"))
    weight_decay: Any = _opt(0.01, "AdamW weight decay", "W")
    warmup_ratio: Any = _opt(0.1, "fraction of steps for linear warm-up before the decay", "R")
    lr_schedule: Any = _opt(
        None,
        "after warm-up: 'cosine' decay to 0, 'linear' decay to 0, or 'constant'",
        "cosine|linear|constant",
        "per modality: text constant, image cosine, audio cosine",
    )
    max_grad_norm: Any = _opt(1.0, "gradient clipping (None: off)", "NORM|none")
    mixed_precision: Any = _opt(None, "'no', 'bf16' or 'fp16'", "no|bf16|fp16", "no")
    gradient_accumulation_steps: Any = _opt(1, "optimiser step every N batches (adds no negatives)", "N")
    seed: Any = _opt(42, "seed for weights, shuffling, augmentation and dropout", "N")
    output_dir: Any = _opt(
        None, "folder for logs and the final model (model/ inside)", "DIR", f"{DEFAULT_RUNS}/run-N (the first free N)"
    )
    overwrite: Any = _opt(False, "allow an existing, non-empty output_dir", "", "off")
    eval_dataset: Any = _opt(
        None,
        "pairs (retrieval metrics), scored pairs (STS), labelled items (kNN accuracy) or a callable(model)",
        "DATA",
        "none",
    )
    eval_every: Any = _opt(
        None,
        "evaluate every N steps (default: after each epoch)",
        "N",
        "after each epoch (and always once before training)",
    )
    probe: Any = _opt(
        None,
        "True or {k, temperature, linear, test_fraction, batch_size}: kNN (+ linear) probe of a "
        "labelled eval_dataset (or {'train': ..., 'test': ...}) at each evaluation (anycl.probe)",
        "true|JSON",
        "off",
    )
    views: Any = _opt(
        None,
        "global views per item (>= 2) for multi-view training; default None: pairwise (anycl.multiview)",
        "V",
        "none (pairwise)",
    )
    local_views: Any = _opt(
        None,
        "local views per item (image crops of local_size, audio windows of local_seconds); "
        "needs a multi-view loss (multiview_infonce, dino)",
        "L",
        "0",
    )
    keep_best: Any = _opt(
        None,
        "metric name (e.g. 'ndcg@10'), or True for the evaluation's primary metric: keep the "
        "weights of the best evaluation (needs eval_dataset)",
        "METRIC",
        "off",
    )
    eval_kind: Any = _opt(
        None,
        "evaluation kind: None (from the columns: score → sts, pairs → retrieval, labels → "
        "knn), 'sts', 'triplet', 'reranking', 'retrieval', 'knn' or 'classification' (kNN + "
        "linear probe)",
        "retrieval|sts|triplet|reranking|knn|classification",
        "from the columns",
    )
    early_stopping_patience: Any = _opt(
        None, "stop after this many evaluations without improvement of the watched metric", "N", "off"
    )
    early_stopping_metric: Any = _opt(
        None,
        "the metric early stopping watches (default: keep_best's, else the evaluation's primary)",
        "METRIC",
        "keep_best's, else the evaluation's primary metric",
    )
    multi_dataset_sampling: Any = _opt(
        None,
        "several data sets ({name: data}): 'proportional' (default) or 'round_robin' batches",
        "proportional|round_robin",
        "proportional",
    )
    callbacks: Any = _opt(
        None, "objects with on_step_end/on_evaluate/on_train_end, or callables(trainer, step, logs)", shell=False
    )
    num_workers: Any = _opt(0, "DataLoader worker processes for loading/augmenting", "N")
    on_bad_item: Any = _opt(
        None, "'raise' (default) or 'skip' unreadable items, reporting the count", "raise|skip", "raise"
    )
    log_with: Any = _opt(
        "tensorboard", "Accelerate tracker(s) used when output_dir is set (default 'tensorboard')", "TRACKER"
    )
    log_every: Any = _opt(
        None,
        "log (trackers, report, collapse watch) every N steps (default: about 100 points per run)",
        "N",
        "about 100 points per run",
    )
    progress: Any = _opt(True, "show the progress bar", "true|false", "true (--quiet: false)")
    cpu: Any = _opt(False, "train on the CPU even when a GPU is present", "", "off")
    gradcache_mini_batch: Any = _opt(
        None, "GradCache: rows embedded at once (full-batch gradients at mini-batch memory; None: off)", "N", "off"
    )
    collapse_watch: Any = _opt(
        True,
        "warn when embeddings collapse (default True; False, or a dict of CollapseWatch options)",
        "true|false|JSON",
        "true",
    )
    checkpoint_every: Any = _opt(
        None, "save a checkpoint to output_dir/checkpoints every N optimiser steps", "N", "off"
    )
    resume_from: Any = _opt(
        None, "'latest' (the newest checkpoint in output_dir, if any) or a checkpoint folder", "latest|DIR", "none"
    )
    keep_checkpoints: Any = _opt(2, "complete checkpoints kept (default 2; None: all)", "N|none")
    peft: Any = _opt(
        None,
        "LoRA through peft: {'r': 16, 'alpha': 32, 'target_modules': [...], 'merge': True} (anycl.lora)",
        "JSON",
        "off (full fine-tuning)",
    )
    freeze: Any = _opt(
        None,
        "towers to keep fixed: a modality, a list, or {modality: 'all'|'encoder'} ('encoder' trains the head)",
        "MODALITY|JSON",
        "none",
    )
    guide: Any = _opt(
        None,
        "guided false-negative masking (GISTEmbed): 'start' (a frozen copy of the starting model), "
        "a sentence-transformers/anycl model path or name, or a ContrastiveModel (default None: "
        "off)",
        "start|NAME|PATH",
        "off",
    )
    guide_margin: Any = _opt(
        None,
        "with guide: mask candidates the guide rates above its anchor-positive score minus this (default 0)",
        "M",
        "0",
    )
    guide_margin_strategy: Any = _opt(
        None,
        "with guide: 'absolute' (score - margin, default) or 'relative' (score - |score|*margin)",
        "absolute|relative",
        "absolute",
    )
    sep: Any = _opt(
        None,
        "field separator of a CSV/TSV dataset file (default: ',' / tab, or sniffed when clearly ';', tab or '|')",
        "SEP",
        "',' for .csv, tab for .tsv, or sniffed when clearly ';', tab or '|'",
    )
    prompts: Any = _opt(
        None,
        "text put before a column's items, keyed by column: {'anchor': 'query: ', 'positive': "
        "'passage: '} (training, evaluation, mining, encode_query/encode_document; saved with "
        "the model)",
        "JSON",
        "none",
    )
    include_prompt: Any = _opt(
        True,
        "text: whether prompt tokens count in mean pooling (default True; False excludes them)",
        "true|false",
        "true",
    )
    matryoshka_dims: Any = _opt(
        None,
        "train prefixes of the embedding too, e.g. [384, 256, 128, 64] (strictly "
        "descending; encode(truncate_dim=64) then gives a usable 64-d embedding)",
        "JSON",
        "off",
    )
    matryoshka_weights: Any = _opt(None, "one weight per matryoshka_dims entry (default all 1)", "JSON", "all 1")

    def __post_init__(self) -> None:
        # built directly: the options that differ from their defaults count as given (from_mapping: its keys)
        self._given: FrozenSet[str] = frozenset(f.name for f in fields(self) if getattr(self, f.name) is not f.default)

    # -- building -------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "fit") -> FitConfig:
        """A config from ``{name: value}``; an unknown name is a ConfigError with the closest valid one."""
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise ConfigError(
                f"unknown {where} option(s) {unknown}{did_you_mean(unknown[0], list(NAMES))}; valid "
                f"options: {', '.join(sorted(FIT_OPTIONS))}"
            )
        cfg = cls(**dict(values))
        cfg._given = frozenset(values)
        return cfg

    @classmethod
    def build(cls, config: Any = None, overrides: Optional[Mapping[str, Any]] = None) -> FitConfig:
        """``fit``'s ``config=`` (a FitConfig, a mapping, or None) with its keyword arguments on top."""
        if config is None:
            base: Dict[str, Any] = {}
        elif isinstance(config, FitConfig):
            base = config.given()
        elif isinstance(config, Mapping):
            base = dict(config)
        else:
            raise ConfigError(f"config must be a FitConfig or a mapping of fit options, got {type(config).__name__}")
        values = {**base, **dict(overrides or {})}
        if values.get("recipe") is not None and (
            not isinstance(values["recipe"], str) or values["recipe"] not in RECIPES
        ):
            raise ConfigError(
                f"unknown recipe {values['recipe']!r}{did_you_mean(str(values['recipe']), list(RECIPES))}; "
                f"recipes: {', '.join(RECIPES)}"
            )
        return cls.from_mapping(apply_recipe(values))

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with ``changes`` given on top."""
        return FitConfig.from_mapping({**self.given(), **changes})

    # -- reading --------------------------------------------------------------------------------------
    def given(self) -> Dict[str, Any]:
        """The options that were given, in field order (what a run records besides its resolved values)."""
        return {n: getattr(self, n) for n in NAMES if n in self._given}

    def options(self) -> Dict[str, Any]:
        """The given options except ``loss``: the ``options`` mapping the stages of ``fit`` read."""
        return {k: v for k, v in self.given().items() if k != "loss"}

    def validate(self) -> FitConfig:
        """Raise ConfigError for the first option whose value cannot work (before any model loads)."""
        validate_options(self.given())
        return self

    def training_values(self, fit_defaults: Mapping[str, Any]) -> Dict[str, Any]:
        """The resolved values of :data:`TRAINING_KEYS` (the anchor adapter's ``fit_defaults`` fill the
        per-modality ones): what :class:`~anycl.training.TrainingArgs` receives and the run records."""
        return {
            "batch_size": int(fit_defaults.get("batch_size", 32) if self.batch_size is None else self.batch_size),
            "epochs": int(self.epochs) if self.epochs is not None else 1,
            "max_steps": self.max_steps,
            "lr": float(fit_defaults.get("lr", 2e-5) if self.lr is None else self.lr),
            "weight_decay": float(self.weight_decay),
            "warmup_ratio": float(self.warmup_ratio),
            "lr_schedule": self.lr_schedule or fit_defaults.get("lr_schedule", "cosine"),
            "max_grad_norm": self.max_grad_norm,
            "mixed_precision": self.mixed_precision or "no",
            "gradient_accumulation_steps": int(self.gradient_accumulation_steps),
            "seed": int(self.seed),
            "log_every": int(self.log_every) if self.log_every is not None else None,
            "eval_every": self.eval_every,
            "num_workers": int(self.num_workers),
        }

    # -- files ----------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The given options as a plain dict (what :meth:`to_yaml` and :meth:`to_json` write)."""
        return self.given()

    def to_yaml(self) -> str:
        return dump_config(self.to_dict())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_yaml(cls, text: str) -> FitConfig:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"a FitConfig's YAML must hold a mapping, got {type(data).__name__}")
        return cls.from_mapping(data, "config")

    @classmethod
    def from_json(cls, text: str) -> FitConfig:
        data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ConfigError(f"a FitConfig's JSON must hold a mapping, got {type(data).__name__}")
        return cls.from_mapping(data, "config")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FitConfig) and self.given() == other.given()


NAMES: Tuple[str, ...] = tuple(f.name for f in fields(FitConfig))
# fit's options beyond dataset/modality/loss, with their meaning (the list errors and the docs show)
FIT_OPTIONS: Dict[str, str] = {f.name: f.metadata["help"] for f in fields(FitConfig) if f.metadata["option"]}
# Python objects a shell cannot give: refused on the command line, and not listed in --help
HIDDEN_FIT_OPTIONS: Tuple[str, ...] = tuple(f.name for f in fields(FitConfig) if not f.metadata["shell"])
# each option's metavar and the default --help shows
FIT_FLAG_DOCS: Dict[str, Tuple[str, str]] = {
    f.name: (f.metadata["metavar"], f.metadata["shown"])
    for f in fields(FitConfig)
    if f.metadata["option"] and f.metadata["shell"]
}


def did_you_mean(name: str, valid: List[str]) -> str:
    """`` (did you mean 'batch_size'?)`` for a near miss, else an empty string."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def dump_config(config: Mapping[str, Any], header: str = "") -> str:
    """The config as YAML text (key order kept), with ``header`` lines as comments."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    body = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    return ("\n".join(lines) + "\n" if lines else "") + body

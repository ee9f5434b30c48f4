"""``FitConfig``: every option of :func:`anycl.fit` in one typed dataclass.

Each field carries its default, its help text, the metavar and the default the command line shows
(``anycl fit --help`` is generated from these), and whether a shell can give it at all. ``fit`` builds one
from its keyword arguments; the command line from its flags and config file; the resolved config of a run
(``config.yaml``) is written from it. Validation is :func:`anycl.options.validation.validate_options`::

    cfg = FitConfig(batch_size=16, lr=1e-4)
    anycl.fit(pairs, "text", config=cfg, epochs=2)           # keyword arguments override the config
    FitConfig.from_yaml(cfg.to_yaml()) == cfg                 # YAML and JSON round trips

Several defaults depend on the modality (the anchor adapter's ``fit_defaults``: text batch 32, lr 2e-5 and a
constant learning rate after warm-up, image 256 and 1e-3, audio 64 and 1e-3, both with cosine decay); those
fields default to ``None`` (or ``"default"`` for ``head``) and
:meth:`FitConfig.training_values` fills them in. ``epochs`` left unset is 1, except for data without pairs
(self-supervised) given no ``max_steps`` either: ``fit`` then takes enough epochs for 1000 optimiser steps, at
most 100 (:mod:`anycl.fitting.recipe`). The config remembers which options were given, because a
run's record lists what it was given plus what it resolved, not every default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

import yaml

from anycl.errors import ConfigError, did_you_mean

from .fields import DEFAULT_RUNS, FitFields  # noqa: F401  (DEFAULT_RUNS: importable from here, as before)
from .recipes import RECIPES, apply_recipe
from .trainer_names import TRAINER_ARGS, translate_trainer_args
from .validation import validate_options

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


@dataclass
class FitConfig(FitFields):
    """The options of :func:`anycl.fit` (see each field's help, or ``anycl fit --help``)."""

    def __post_init__(self) -> None:
        # built directly: the options that differ from their defaults count as given (from_mapping: its keys)
        self._given: FrozenSet[str] = frozenset(f.name for f in fields(self) if getattr(self, f.name) is not f.default)

    # -- building -------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "fit") -> FitConfig:
        """A config from ``{name: value}``; an unknown name is a ConfigError with the closest valid one.
        transformers' trainer argument names (``num_train_epochs``, ``learning_rate``, ``fp16``, ...) are read as
        the options they are, or refused naming the option to use (:mod:`anycl.options.trainer_names`)."""
        values = translate_trainer_args(values, NAMES)
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise ConfigError(
                f"unknown {where} option(s) {unknown}{did_you_mean(unknown[0], [*NAMES, *TRAINER_ARGS])}; valid "
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
        validate_options(self)
        return self

    def resolved_batch_size(self, fit_defaults: Mapping[str, Any]) -> int:
        """The batch size the run trains with: the given one, else the anchor adapter's (32 when it has none)."""
        return int(fit_defaults.get("batch_size", 32) if self.batch_size is None else self.batch_size)

    def training_values(self, fit_defaults: Mapping[str, Any]) -> Dict[str, Any]:
        """The resolved values of :data:`TRAINING_KEYS` (the anchor adapter's ``fit_defaults`` fill the
        per-modality ones): what :class:`~anycl.training.TrainingArgs` receives and the run records."""
        return {
            "batch_size": self.resolved_batch_size(fit_defaults),
            "epochs": int(self.epochs) if self.epochs is not None else 1,
            "max_steps": self.max_steps,
            "lr": float(fit_defaults.get("lr", 2e-5) if self.lr is None else self.lr),
            "weight_decay": float(self.weight_decay),
            "warmup_ratio": float(self.warmup_ratio),
            "lr_schedule": self.lr_schedule or fit_defaults.get("lr_schedule", "cosine"),
            "max_grad_norm": self.max_grad_norm,
            "mixed_precision": self.mixed_precision or "auto",  # fit resolves "auto" (anycl.training.precision)
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


def dump_config(config: Mapping[str, Any], header: str = "") -> str:
    """The config as YAML text (key order kept), with ``header`` lines as comments."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    body = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    return ("\n".join(lines) + "\n" if lines else "") + body

"""Run configs: YAML or JSON files with the names of ``fit``'s arguments, and the resolved config of a run.

A config file holds ``dataset``, ``modality``, ``loss`` and any option of :class:`anycl.options.fit_config.FitConfig`::

    dataset: data/pairs.csv
    modality: text
    loss: infonce
    batch_size: 16
    epochs: 1

``fit`` records the *resolved* config of every run (the options it was given plus the values it chose
for the rest: batch size, learning rate, loss options, seed, …) in ``model.info["config"]``; saving the
model writes it beside the weights as ``config.yaml``, so ``anycl fit --config out/model/config.yaml``
repeats the run. Where the run is written (``output_dir``, ``overwrite``, ``resume_force``) and how it is shown
(``progress``) are not part of what the run is and are not recorded. Options that are Python objects
(an ``encoder`` module, ``callbacks``, an in-memory dataset) cannot be written to a file: they are named
under ``not_recorded`` in the file's header comment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from anycl.errors import ConfigError, did_you_mean
from anycl.version import __version__

from .fit_config import FIT_OPTIONS, TRAINING_KEYS, dump_config  # noqa: F401  (also anycl.config's)
from .trainer_names import TRAINER_ARGS

RUN_CONFIG_FILE = "config.yaml"  # a run's resolved config (the model's own file is anycl.model.contrastive.CONFIG_FILE)
TOP_KEYS = ("dataset", "modality", "loss")
NOT_RECORDED = ("output_dir", "overwrite", "progress", "resume_force")  # where and how, not what


def valid_keys() -> List[str]:
    return list(TOP_KEYS) + sorted(FIT_OPTIONS)


def check_keys(config: Mapping[str, Any], where: str = "the config") -> None:
    """Raise ConfigError naming unknown keys and listing the valid ones."""
    valid = valid_keys()
    unknown = [k for k in config if k not in valid and k not in TRAINER_ARGS]  # those: read, or refused, by FitConfig
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}{did_you_mean(unknown[0], valid)}; valid keys: {', '.join(valid)}"
        )


def load_config(path: str) -> Dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config file and check its keys."""
    p = Path(path)
    if p.is_dir() and (p / RUN_CONFIG_FILE).exists():
        p = p / RUN_CONFIG_FILE
    elif p.is_dir() and (p / "model" / RUN_CONFIG_FILE).exists():
        p = p / "model" / RUN_CONFIG_FILE
    if not p.exists():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"config file {str(p)!r} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {first}"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file {str(p)!r} must hold a mapping of option names to values, got {type(data).__name__}"
        )
    check_keys(data, f"config file {str(p)!r}")
    return dict(data)


def parse_value(text: str) -> Any:
    """A command-line value: JSON (``16``, ``1e-4``, ``[1, 2]``, ``{"a": 1}``), YAML flow
    (``{anchor: query}``), ``true``/``false``/``none``/``null``, or else the string itself."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        pass
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null", "~"):
        return None
    if text.strip()[:1] in ("{", "["):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value {text!r}: {str(exc).splitlines()[0]}") from exc
        glued = _glued_key(value)
        if glued is not None:
            key, _, rest = glued.partition(":")
            raise ConfigError(
                f"cannot parse the value {text!r}: {glued!r} reads as one key without a value (YAML needs a space "
                f"after the colon); write it as JSON, '{{\"{key.strip()}\": {rest.strip()}}}', or "
                f"'{{{key.strip()}: {rest.strip()}}}'"
            )
        return value
    return text


def _glued_key(value: Any) -> Optional[str]:
    """A mapping key such as ``'sample_rate:44100'`` with no value (``{sample_rate:44100}`` in YAML flow
    style, a colon with no space after it), anywhere in ``value``; else None."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if v is None and isinstance(k, str) and ":" in k:
                return k
            found = _glued_key(v)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _glued_key(v)
            if found is not None:
                return found
    return None


# -- the resolved config of a run ----------------------------------------------------------------------
def _plain(value: Any) -> Tuple[bool, Any]:
    """(True, value as YAML-safe data) for plain data; (False, None) for Python objects."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, os.PathLike):
        return True, os.fspath(value)
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            ok, pv = _plain(v)
            if not ok:
                return False, None
            out.append(pv)
        return True, out
    if isinstance(value, Mapping):
        plain: Dict[str, Any] = {}
        for k, v in value.items():
            ok, pv = _plain(v)
            if not ok or not isinstance(k, str):
                return False, None
            plain[k] = pv
        return True, plain
    return False, None


def _data_spec(value: Any) -> Tuple[bool, Any]:
    if isinstance(value, (str, os.PathLike)):
        s = os.fspath(value)
        return True, str(Path(s).expanduser().resolve()) if Path(s).expanduser().exists() else s
    if isinstance(value, Mapping) and value:  # several data sets by name (anycl.data.multi)
        specs = {str(k): _data_spec(v) for k, v in value.items()}
        if all(ok for ok, _ in specs.values()):
            return True, {k: spec for k, (_, spec) in specs.items()}
    return False, None


def resolved_config(
    dataset: Any,
    modality: Any,
    loss: Any,
    options: Mapping[str, Any],
    *,
    args: Any = None,
    loss_name: Optional[str] = None,
    loss_options: Optional[Mapping[str, Any]] = None,
    sampler_options: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The config that repeats a ``fit`` run: what it was given, plus the values it resolved.

    Args:
        dataset, modality, loss, options: ``fit``'s arguments as given.
        args: the :class:`~anycl.training.TrainingArgs` used (its resolved values are recorded).
        loss_name / loss_options: the loss actually built and its keyword arguments.
        sampler_options: the sampler's keyword arguments actually used (with its seed).

    Returns a dict; the key ``not_recorded`` lists options that are Python objects (kept out of files).
    """
    cfg: Dict[str, Any] = {}
    skipped: List[str] = []
    ok, spec = _data_spec(dataset)
    cfg["dataset"] = spec if ok else None
    if not ok:
        skipped.append("dataset")
    ok, m = _plain(modality)
    cfg["modality"] = m if ok else None
    if isinstance(loss, Mapping) and all(isinstance(v, str) for v in loss.values()):
        cfg["loss"] = dict(loss)  # one loss per data set
    elif isinstance(loss, str) or loss is None:
        cfg["loss"] = loss_name or loss
    else:
        cfg["loss"] = None
        skipped.append("loss")
    given = dict(options)
    if loss_options is not None:
        given["loss_options"] = dict(loss_options)
        given.pop("temperature", None)  # folded into loss_options
    if args is not None:
        for k in TRAINING_KEYS:
            given[k] = getattr(args, k)
    if sampler_options is not None and isinstance(given.get("sampler", "in_batch"), str):
        given.setdefault("sampler", "in_batch")
        given["sampler_options"] = dict(sampler_options)
    for k in sorted(given):
        if k in NOT_RECORDED:
            continue
        v = given[k]
        if k == "eval_dataset":
            ok, pv = _data_spec(v) if v is not None else (True, None)
        else:
            ok, pv = _plain(v)
        if ok:
            cfg[k] = pv
        else:
            skipped.append(k)
    if skipped:
        cfg["not_recorded"] = skipped
    return cfg


def config_file_text(config: Mapping[str, Any]) -> str:
    """The text of ``config.yaml`` for a resolved config (``not_recorded`` goes into the header)."""
    body = {k: v for k, v in config.items() if k != "not_recorded"}
    header = [
        f"anycl {__version__}: the resolved config of this run; repeat it with",
        "  anycl fit --config <this file> --output-dir <new folder>",
    ]
    skipped = config.get("not_recorded") or []
    if skipped:
        header.append(f"not recorded (Python objects, give them again from Python): {', '.join(skipped)}")
    return dump_config(body, "\n".join(header))

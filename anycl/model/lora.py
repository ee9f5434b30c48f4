"""LoRA fine-tuning through ``peft``: ``fit(..., peft={"r": 16, "alpha": 32, "target_modules": [...]})``.

LoRA layers are injected *in place* into each tower's weight-carrying module (the transformer of a text
tower, the encoder module of any other tower), so the tower, its adapter and the saved format stay what
they were; only the LoRA matrices (and any projection head) train, the base weights are frozen.

After training the adapter is merged into the base weights by default (``"merge": True``): the saved
model is an ordinary anycl folder and its text tower an ordinary sentence-transformers folder, with the
same embeddings as the LoRA model. With ``"merge": False`` the model keeps its LoRA layers; ``save``
writes the *base* weights where they always go and the adapter beside them in ``towers/<name>/lora/``, a
PEFT adapter folder (``adapter_config.json`` with its ``peft_type``, ``adapter_model.safetensors`` under
PEFT's key names), which :func:`anycl.load` puts back and which PEFT and sentence-transformers load too::

    st = SentenceTransformer("out/towers/text")   # the base weights
    st.load_adapter("out/towers/text/lora")       # + the adapter: anycl's embeddings

Folders written before (``adapter.safetensors`` + anycl's own option names) still load.

Options (the ``peft`` dict): ``r`` (rank, default 8), ``alpha`` (scaling numerator, default 2·r),
``dropout`` (default 0.0), ``target_modules`` (module names or a regex; default: peft's choice for known
transformer architectures, the attention query and value of a pretrained audio encoder (its
``lora_targets``), required for other encoders), ``towers`` (the modalities to adapt; default
all whose encoder has matching modules), ``merge`` (default True).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import safetensors.torch  # its functions looked up when called (tests stand in for them)
from torch import nn

from anycl.errors import ConfigError
from anycl.reading import read_json
from anycl.statefile import StateFileError, read_safetensors, tensor_shapes

OPTIONS = ("r", "alpha", "dropout", "target_modules", "towers", "merge")
ADAPTER_DIR = "lora"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's names (peft.utils.SAFETENSORS_WEIGHTS_NAME)
ADAPTER_CONFIG = "adapter_config.json"
OLD_ADAPTER_WEIGHTS = "adapter.safetensors"  # anycl before the PEFT format: its keys are the module's own
PEFT_PREFIX = "base_model.model."  # a PeftModel's path to the adapted module


def _peft():
    try:
        import peft  # lazy: optional dependency (the `peft` extra)
    except ImportError as exc:
        raise ConfigError("LoRA fine-tuning needs the package peft: pip install 'anycl[peft]'") from exc
    return peft


def check_options(spec: Any) -> Dict[str, Any]:
    """Validate ``fit``'s ``peft`` option; returns it with defaults filled in."""
    if spec is True:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"peft must be a dict such as {{'r': 16, 'alpha': 32}}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown peft option(s) {unknown}; valid: {', '.join(OPTIONS)}")
    out = dict(spec)
    r = out.setdefault("r", 8)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ConfigError(f"peft r (the LoRA rank) must be an int >= 1, got {r!r}")
    alpha = out.setdefault("alpha", 2 * r)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ConfigError(f"peft alpha must be a positive number, got {alpha!r}")
    dropout = out.setdefault("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"peft dropout must be a number in [0, 1), got {dropout!r}")
    tm = out.get("target_modules")
    if tm is not None and not (
        isinstance(tm, str) or (isinstance(tm, (list, tuple)) and tm and all(isinstance(t, str) for t in tm))
    ):
        raise ConfigError(f"peft target_modules must be a list of module names or a regex string, got {tm!r}")
    if tm is not None and not isinstance(tm, str):
        out["target_modules"] = list(tm)
    towers = out.get("towers")
    if towers is not None:
        out["towers"] = [towers] if isinstance(towers, str) else list(towers)
    out.setdefault("merge", True)
    if not isinstance(out["merge"], bool):
        raise ConfigError(f"peft merge must be true or false, got {out['merge']!r}")
    return out


def target_module(tower) -> nn.Module:
    """The module LoRA goes into: a text tower's transformer, an encoder's ``lora_module`` (a pretrained audio
    encoder's transformers model), else the tower's encoder."""
    st = getattr(tower.encoder, "st", None)
    if st is not None and hasattr(st[0], "auto_model"):
        return st[0].auto_model
    inner = getattr(tower.encoder, "lora_module", None)
    return inner if isinstance(inner, nn.Module) else tower.encoder


def _lora_config(spec: Mapping[str, Any], tower):
    """peft's LoraConfig; without target_modules, the encoder's ``lora_targets`` where it names them (else
    peft's choice for the architecture)."""
    peft = _peft()
    kwargs = dict(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"], bias="none")
    targets = spec.get("target_modules") or getattr(tower.encoder, "lora_targets", None)
    if targets is not None:
        kwargs["target_modules"] = targets
    return peft.LoraConfig(**kwargs)


def apply_lora(model, spec: Union[bool, Mapping[str, Any]]) -> Dict[str, int]:
    """Inject LoRA layers into the towers named by ``spec`` (all by default), in place.

    Returns {modality: trainable LoRA parameters}. The base weights of each adapted module are frozen.
    """
    peft = _peft()
    spec = check_options(spec)
    names = spec.get("towers") or list(model.towers)
    missing = [n for n in names if n not in model.towers]
    if missing:
        raise ConfigError(f"peft towers {missing} are not towers of this model ({list(model.towers)})")
    counts = {}
    for name in names:
        tower = model.towers[name]
        module = target_module(tower)
        try:
            tuner = peft.LoraModel(module, _lora_config(spec, tower), "default")
        except ValueError as exc:  # no matching module, or peft cannot guess the targets
            raise ConfigError(
                f"LoRA could not be applied to the {name} tower: {' '.join(str(exc).split())[:300]}"
                f"; give peft={{'target_modules': [...]}} with names of its Linear/Conv layers"
            ) from None
        object.__setattr__(tower, "lora", tuner)  # not a submodule: its parameters are the module's own
        object.__setattr__(tower, "lora_spec", dict(spec))
        counts[name] = sum(p.numel() for n, p in module.named_parameters() if "lora_" in n)
    return counts


def has_lora(tower) -> bool:
    return getattr(tower, "lora", None) is not None


def merge_lora(model) -> None:
    """Fold every tower's LoRA layers into its base weights (the model becomes a plain one)."""
    for tower in model.towers.values():
        if has_lora(tower):
            tower.lora.merge_and_unload()
            object.__setattr__(tower, "lora", None)


def adapter_state(module: nn.Module) -> Dict[str, Any]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if "lora_" in k}


def peft_state(module: nn.Module, adapter: str = "default") -> Dict[str, Any]:
    """The LoRA weights under PEFT's key names (what ``PeftModel.save_pretrained`` writes): the adapted
    module's path after ``base_model.model.``, without the adapter's name."""
    tag = f".{adapter}."
    return {PEFT_PREFIX + k.replace(tag, "."): v for k, v in adapter_state(module).items() if tag in k}


def _from_peft_keys(state: Mapping[str, Any], adapter: str = "default") -> Dict[str, Any]:
    """PEFT's key names back to the module's own (``...lora_A.weight`` → ``...lora_A.default.weight``)."""
    out = {}
    for k, v in state.items():
        k = k[len(PEFT_PREFIX) :] if k.startswith(PEFT_PREFIX) else k
        head, _, leaf = k.rpartition(".")
        out[f"{head}.{adapter}.{leaf}"] = v
    return out


def without_lora(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its LoRA layers taken out (each replaced by its base layer): the base weights."""
    peft = _peft()
    base = copy.deepcopy(module)
    for parent in list(base.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, peft.tuners.lora.LoraLayer):
                setattr(parent, child_name, child.get_base_layer())
    return base


def save_tower(tower, directory: str, base_model: Optional[str] = None) -> Dict[str, Any]:
    """Save a LoRA tower unmerged: base weights as usual (from a copy with the LoRA layers removed), the
    adapter in ``<directory>/lora`` as a PEFT adapter folder (``base_model`` recorded as its
    ``base_model_name_or_path``). Returns the encoder spec for the model config."""
    state = peft_state(target_module(tower))
    spec = tower.adapter.save_encoder(without_lora(tower.encoder), directory)
    d = Path(directory) / ADAPTER_DIR
    d.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state, str(d / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    config = copy.deepcopy(tower.lora.peft_config["default"])  # the resolved one: target modules named
    config.base_model_name_or_path = base_model
    config.inference_mode = True
    config.save_pretrained(str(d))
    return spec


def _spec_of(config: Mapping[str, Any]) -> Dict[str, Any]:
    """anycl's ``peft`` options from an adapter_config.json: PEFT's (``peft_type``) or anycl's older own."""
    if "peft_type" not in config:
        return {k: v for k, v in config.items() if k in OPTIONS and k != "towers"}
    if str(config["peft_type"]).upper() != "LORA":
        raise ConfigError(
            f"anycl loads LoRA adapters only; this adapter_config.json has peft_type {config['peft_type']!r}"
        )
    tm = config.get("target_modules")
    return {
        "r": config.get("r", 8),
        "alpha": config.get("lora_alpha", 8),
        "dropout": config.get("lora_dropout", 0.0),
        "target_modules": sorted(tm) if isinstance(tm, (list, tuple, set)) else tm,
        "merge": False,
    }


def load_tower_adapter(tower, directory: str) -> None:
    """Put back the adapter saved by :func:`save_tower` (no-op when the folder has none)."""
    d = Path(directory) / ADAPTER_DIR
    if not os.path.lexists(d / ADAPTER_CONFIG):
        return
    config = read_json(d / ADAPTER_CONFIG, root=directory)
    if not isinstance(config, dict):
        raise ConfigError(
            f"{d / ADAPTER_CONFIG} must hold a JSON object (the LoRA options), got {type(config).__name__}"
        )
    spec = check_options(_spec_of(config))
    weights = ADAPTER_WEIGHTS if os.path.lexists(d / ADAPTER_WEIGHTS) else OLD_ADAPTER_WEIGHTS
    try:  # the rank decides the size of every LoRA matrix: it must be the rank of the saved weights
        shapes = tensor_shapes(d / weights, root=directory)
    except StateFileError as exc:
        raise ConfigError(str(exc)) from exc
    ranks = {s[0] for k, s in shapes.items() if "lora_A" in k and s} | {
        s[-1] for k, s in shapes.items() if "lora_B" in k
    }
    if ranks != {spec["r"]}:
        raise ConfigError(
            f"{d / ADAPTER_CONFIG} gives LoRA rank r={spec['r']} but {weights} holds matrices of rank "
            f"{sorted(ranks)}; the folder was altered or mixed from two models"
        )
    peft = _peft()
    module = target_module(tower)
    tuner = peft.LoraModel(module, _lora_config(spec, tower), "default")
    state = read_safetensors(d / weights, root=directory)
    if weights == ADAPTER_WEIGHTS:
        state = _from_peft_keys(state)
    result = module.load_state_dict(state, strict=False)
    lost = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or lost:
        raise ConfigError(
            f"the LoRA adapter in {d} does not fit its tower (missing {lost[:3]}, unexpected "
            f"{result.unexpected_keys[:3]})"
        )
    object.__setattr__(tower, "lora", tuner)
    object.__setattr__(tower, "lora_spec", spec)


def lora_summary(model) -> Optional[Dict[str, Any]]:
    """{modality: spec} of towers that still carry LoRA layers, or None."""
    out = {n: dict(t.lora_spec) for n, t in model.towers.items() if has_lora(t)}
    return out or None

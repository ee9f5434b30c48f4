"""A new model's towers (what :func:`anycl.model.build_model` assembles into a
:class:`~anycl.model.ContrastiveModel`): one per distinct modality of the sides, each its registered adapter,
an encoder (the adapter's default, with a pretrained model name or options, or a module given as it is)
and an optional projection head; several towers must give embeddings of one width."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping, Union

from torch import nn

from anycl.adapters.registry import get as get_adapter
from anycl.errors import ConfigError

from .tower import Tower, projection_head


def per_modality(value: Any, modality: str, modalities) -> Any:
    """Options given as {modality: x} pick this modality's; anything else applies to all."""
    if isinstance(value, Mapping) and value and set(value) <= set(modalities) | {"default"}:
        return value.get(modality, value.get("default"))
    return value


def model_for(model: Any, modality: str, modalities, adapter) -> Any:
    """The pretrained model= of one tower: a string goes to the tower whose adapter (class or instance) claims
    it (text's), or to the only tower; {modality: x} picks per tower."""
    if isinstance(model, Mapping):
        return model.get(modality)
    return model if getattr(adapter, "claims_model_name", False) or len(set(modalities)) == 1 else None


def _check_model_used(modality: str, chosen: Any, encoder: Any, adapter) -> None:
    """A model= that the tower would not use is an error, never silently dropped."""
    if chosen is None:
        return
    if encoder is not None:
        raise ConfigError(
            f"both model= and encoder= give the {modality} tower's encoder; pass one of them (model={chosen!r})"
        )
    if "model" not in inspect.signature(adapter.default_encoder).parameters:
        raise ConfigError(
            f"the {modality} adapter takes no pretrained model (model={chosen!r}); pass encoder=<nn.Module>, "
            f"or leave model= out"
        )


def build_towers(
    sides: Mapping[str, str],
    *,
    model: Union[str, Mapping[str, str], None],
    encoder,
    encoder_options,
    adapter_options,
    head: Any,
) -> Dict[str, Tower]:
    """``{modality: Tower}`` for :func:`anycl.model.build_model` (its arguments; the defaults are its own)."""
    modalities = sorted(set(sides.values()))
    towers = {}
    for m in modalities:
        adapter = get_adapter(m, **(per_modality(adapter_options, m, modalities) or {}))
        enc = per_modality(encoder, m, modalities) if isinstance(encoder, Mapping) else encoder
        chosen = model_for(model, m, modalities, adapter)
        adopted = adapter.adopt_encoder(chosen) if isinstance(chosen, nn.Module) else None
        if adopted is not None and adopted is not chosen:
            # model=<a loaded model the adapter knows> (text: a SentenceTransformer): the encoder, as encoder= is
            if enc is not None:
                raise ConfigError(f"both model= and encoder= give the {m} tower's encoder; pass one of them")
            enc, chosen = adopted, None
        _check_model_used(m, chosen, enc, adapter)
        if enc is None:
            opts = dict(per_modality(encoder_options, m, modalities) or {})
            if chosen is not None:  # _check_model_used refused a name this tower would not use
                opts.setdefault("model", chosen)
            enc = adapter.default_encoder(**opts)
        elif not isinstance(enc, nn.Module):
            raise ConfigError(f"encoder for {m!r} must be an nn.Module, got {type(enc).__name__}")
        elif enc is not adopted:  # encoder=<module>: the adapter wraps a class it knows (model= was wrapped above)
            enc = adapter.adopt_encoder(enc)
        h = head
        if h == "default":
            h = adapter.fit_defaults.get("head") if len(modalities) == 1 else 256
        head_module = None
        if h:
            in_dim = adapter.embedding_dim(enc)
            if in_dim is None:
                raise ConfigError(
                    f"the {m} encoder does not state its output width (an `embedding_dim` attribute), so a "
                    f"projection head cannot be sized; set encoder.embedding_dim or head=None"
                )
            out_dim = 128 if h is True or h == "mlp" else int(h)
            head_module = projection_head(in_dim, out_dim)
        towers[m] = Tower(adapter, enc, head_module, encode_with_head=len(modalities) > 1)
    if len(modalities) > 1:
        widths = set()
        for t in towers.values():
            spec: Any = getattr(t.head, "anycl_spec", None)  # a projection head's: how to rebuild it
            widths.add(spec["out_dim"] if t.head is not None else t.adapter.embedding_dim(t.encoder))
        if len(widths) > 1:
            raise ConfigError(
                f"the towers give embeddings of different widths {sorted(map(str, widths))} and have no projection "
                f"head to a shared width; pass head=<width> (e.g. head=256)"
            )
    return towers

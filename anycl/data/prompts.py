"""Prompts: fixed text put in front of each item of a column (``"query: "``, ``"passage: "``).

``fit(..., prompts={"anchor": "query: ", "positive": "passage: "})`` keys prompts by column, as
sentence-transformers' trainer does; a key may be the convention's name (``anchor``, ``positive``,
``negative``, ``negative_2`` …) or the dataset's own column name mapped by ``columns=``. They become
one prompt per *side* of the model:

- ``anchor``: the anchors in training; queries in evaluation and mining; ``encode_query``.
- ``positive``: the positives in training; the corpus in evaluation and mining; ``encode_document``.
- ``negative``: given or mined hard negatives. Without a prompt of their own they take the
  positive's: a negative is a document, and the corpus it is mined from and evaluated against is
  embedded with the positive's prompt. (sentence-transformers' trainer leaves a column without a
  prompt unprompted; give ``"negative": ""`` for that.)

Self-supervised data (one column) has its anchor's prompt on both views. Prompts apply to the towers
whose adapter ``supports_prompts`` (text). They are stored with the model and written into its
sentence-transformers folders (``prompts`` of ``config_sentence_transformers.json``, with
``query``/``document`` aliases for ``encode_query``/``encode_document``).
"""

from __future__ import annotations

from typing import Any, Collection, Dict, Iterable, Mapping, Optional

from anycl.errors import ConfigError

SIDES = ("anchor", "positive", "negative")


def check_prompt_map(prompts: Any, what: str = "prompts") -> Dict[str, str]:
    if prompts is None:
        return {}
    if not isinstance(prompts, Mapping):
        raise ConfigError(
            f"{what} must be a mapping of column name → prompt text, e.g. "
            f"{{'anchor': 'query: ', 'positive': 'passage: '}}; got {type(prompts).__name__}"
        )
    for k, v in prompts.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigError(f"{what} must map column names (str) to prompt texts (str); got {k!r}: {v!r}")
    return dict(prompts)


def resolve_fit_prompts(
    prompts: Any,
    columns: Iterable[str],
    mapping: Optional[Mapping[str, str]],
    side_modalities: Mapping[str, str],
    mined_negatives: bool = False,
    *,
    prompt_modalities: Collection[str],
) -> Dict[str, str]:
    """``fit``'s ``prompts`` (keyed by column) → one prompt per side; raises for unknown columns and
    for sides whose modality is not among ``prompt_modalities`` (those whose adapter ``supports_prompts``)."""
    prompts = check_prompt_map(prompts)
    if not prompts:
        return {}
    columns = [c for c in columns if c != "label"]
    if mined_negatives and "negative" not in columns:
        columns.append("negative")
    user_names = {v: k for k, v in dict(mapping or {}).items()}  # the dataset's own name → convention name
    by_side: Dict[str, str] = {}
    for key, text in prompts.items():
        col = key if key in columns else user_names.get(key)
        if col is None and key == "negative" and any(c.startswith("negative") for c in columns):
            col = "negative"
        if col is None or col not in columns and col != "negative":
            valid = columns + [u for u, c in user_names.items() if c in columns]
            raise ConfigError(
                f"prompts name column {key!r}, which the dataset does not have; its columns are {sorted(set(valid))}"
            )
        side = "negative" if col.startswith("negative") else col
        if side in by_side and by_side[side] != text:
            raise ConfigError(
                f"prompts give the {side} side two different prompts ({by_side[side]!r} and "
                f"{text!r}); every hard-negative column shares one prompt"
            )
        by_side[side] = text
    for side in by_side:
        modality = side_modalities.get(side, side_modalities.get("anchor"))
        if modality not in prompt_modalities:
            raise ConfigError(f"prompts apply to text only; the {side} side is {modality!r}")
    if "positive" not in columns and "anchor" in by_side:  # one column: both views are the anchor
        by_side.setdefault("positive", by_side["anchor"])
    return by_side


def prompt_for(prompts: Mapping[str, str], side: str) -> Optional[str]:
    """The prompt of a side (``negative`` falls back to the positive's); None when there is none."""
    if side in prompts:
        return prompts[side] or None
    if side.startswith("negative"):
        return prompts.get("negative", prompts.get("positive")) or None
    return None


def st_prompts(prompts: Mapping[str, str], sides: Iterable[str]) -> Dict[str, str]:
    """The prompts a sentence-transformers folder of a tower serving ``sides`` holds: the sides' own,
    plus ``query`` (anchor) and ``document`` (positive) for ST's ``encode_query``/``encode_document``."""
    sides = list(sides)
    out = {s: prompts[s] for s in SIDES if s in sides and s in prompts}
    if "anchor" in out:
        out.setdefault("query", out["anchor"])
    if "positive" in out:
        out.setdefault("document", out["positive"])
    return out

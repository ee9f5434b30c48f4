"""``fit``'s data stage: which modality each side has, the rows of one or several data sets, and the
checks of every item against its tower's adapter."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from anycl import adapters as adapter_registry
from anycl.data.column_spec import checks, column_specs
from anycl.data.inputs import Rows, check_items, to_rows
from anycl.data.item_checks import check_data
from anycl.data.multi import is_multi_dataset, per_dataset
from anycl.data.open import open_dataset
from anycl.errors import ConfigError, DataError
from anycl.options.fit_config import FitConfig

SIDES = ("anchor", "positive", "negative")


def check_modality(name: Any) -> None:
    """A ConfigError unless ``name`` is a registered adapter's modality."""
    if not isinstance(name, str) or name not in adapter_registry.ADAPTERS:
        raise ConfigError(
            f"no adapter for modality {name!r}; registered modalities: {', '.join(adapter_registry.names())}"
            f" (add one with @anycl.adapters.register)"
        )


def resolve_modalities(modality: Any) -> Dict[str, str]:
    """``fit``'s ``modality`` (a name, or a mapping of sides) → {side: modality} for all three sides."""
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
        check_modality(m)
    return sides


def file_extensions(modality: Any) -> tuple:
    """The file extensions a folder dataset is read with: the adapter's, for a single modality."""
    return adapter_registry.file_extensions(modality) if isinstance(modality, str) else ()


def file_reader(modality: Any) -> Optional[Callable[[str], Any]]:
    """``read(path) -> item`` for a folder dataset's files (a text file's text), for a single modality."""
    return adapter_registry.file_reader(modality) if isinstance(modality, str) else None


def load_parts(
    dataset: Any, cfg: FitConfig, exts: tuple, read_file: Optional[Callable[[str], Any]] = None
) -> Tuple[Dict[str, Rows], bool]:
    """({data set name: rows}, several?) — one data set is named ``""``; several come as {name: data set}
    (anycl.data.multi), each with its own ``columns`` when ``columns`` is keyed by data set.
    Each is checked with what needs no model (:func:`anycl.data.item_checks.check_data`: labels, negatives)."""
    multi = is_multi_dataset(dataset)
    if multi:
        names = [str(k) for k in dataset]
        cols = per_dataset(cfg.columns, names)
        parts = {
            str(k): to_rows(open_dataset(d), cols[str(k)] if cols else cfg.columns, exts, cfg.sep, read_file)
            for k, d in dataset.items()
        }
    else:
        parts = {"": to_rows(open_dataset(dataset), cfg.columns, exts, cfg.sep, read_file)}
    for name, part in parts.items():
        try:
            check_data(part)
        except DataError as exc:
            raise DataError(f"data set {name!r}: {exc}" if name else str(exc)) from None
    return parts, multi


def check_rows(rows: Rows, cfg: FitConfig, log) -> None:
    """Enough rows to contrast (a streamed data set is taken as it comes)."""
    if not rows.streaming and len(rows) < 2:
        raise ConfigError(f"the dataset has {len(rows)} row; contrastive training needs at least 2")
    if rows.streaming and not cfg.max_steps and cfg.epochs is None:
        log.info("streamed dataset: training for 1 epoch over the stream (set max_steps or epochs to change)")


def check_all_items(model, parts: Mapping[str, Rows], losses: Mapping[str, Any]) -> None:
    """Check every item of every data set with its tower's adapter (and the scores a loss reads), through
    each data set's column specs (:func:`anycl.data.column_spec.column_specs`); streamed data is checked as it
    is read, by :class:`~anycl.data.batching.BatchStream` with the batch builder's specs."""
    for name, part in parts.items():
        score_columns = tuple(getattr(losses[name], "score_columns", ()) or ())  # the numbers the loss reads
        check_items(part, checks(column_specs(model, ["anchor", "positive", *part.negatives, *score_columns])))

"""Online probes: is pretraining helping yet? kNN (and optionally a linear probe) on labelled items.

``fit(..., eval_dataset=labelled, probe={...}, eval_every=N)`` embeds the labelled items with the
model being trained every N optimiser steps (and once before training, the baseline) and logs
``knn@k_accuracy`` (and ``linear_probe_accuracy``) to the trackers (TensorBoard: ``eval/...``), the
run's report (``report.html`` figure and table) and ``model.trainer.eval_history`` — for any modality,
since the items go through the model's own tower (its evaluation view).

``eval_dataset`` for a probe is either one labelled set (``anchor`` + ``label`` columns, or the column
names mapped with ``columns``) or ``{"train": labelled, "test": labelled}``: the classifier's bank
(kNN neighbours, logistic-regression training set) and the items it is scored on. With one set the kNN
is leave-one-out (each item's neighbours exclude itself); a linear probe needs a split, so with one set
and ``linear=True`` a seeded, stratified ``test_fraction`` is held out (kNN is then scored on it too).

Options (``probe=True`` for the defaults, or a dict):
    k: neighbours (default 20). temperature: ``None`` (majority vote) or τ for votes weighted by
    ``exp(cos/τ)`` (default 0.07, the weighted kNN of the SSL literature). linear: also a logistic-
    regression probe (default False; scikit-learn). test_fraction: held-out share for one set with
    ``linear=True`` (default 0.2). batch_size: items embedded at once (default 64).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from anycl.data.inputs import LABEL, to_rows
from anycl.data.item_checks import check_labels
from anycl.errors import ConfigError, DataError

from .classification import ClassificationEvaluator
from .knn import KNNEvaluator
from .linear_probe import ProbeEvaluator

DEFAULTS: Dict[str, Any] = {"k": 20, "temperature": 0.07, "linear": False, "test_fraction": 0.2, "batch_size": 64}


def probe_options(probe: Any) -> Dict[str, Any]:
    """The resolved options of ``probe`` (True or a dict); ConfigError for anything else."""
    if probe is True:
        return dict(DEFAULTS)
    if not isinstance(probe, Mapping):
        raise ConfigError(f"probe must be True or a dict of {sorted(DEFAULTS)}, got {probe!r}")
    unknown = sorted(set(probe) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown probe option(s) {unknown}; valid: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **probe}
    for name in ("k", "batch_size"):
        if isinstance(o[name], bool) or not isinstance(o[name], int) or o[name] < 1:
            raise ConfigError(f"probe {name} must be an integer >= 1, got {o[name]!r}")
    if o["temperature"] is not None and not (isinstance(o["temperature"], (int, float)) and o["temperature"] > 0):
        raise ConfigError(f"probe temperature must be None or > 0, got {o['temperature']!r}")
    if not isinstance(o["linear"], bool):
        raise ConfigError(f"probe linear must be True or False, got {o['linear']!r}")
    if not (isinstance(o["test_fraction"], (int, float)) and 0 < o["test_fraction"] < 1):
        raise ConfigError(f"probe test_fraction must be in (0, 1), got {o['test_fraction']!r}")
    return o


def _labelled(data: Any, columns, file_extensions: Sequence[str], what: str):
    rows = to_rows(data, columns, file_extensions)
    check_labels(rows)  # no missing or NaN label
    if not rows.has_label:
        raise DataError(
            f"the probe's {what} needs a 'label' column (and the items under 'anchor'); its columns are {rows.columns}"
        )
    items, labels = rows.column("anchor"), rows.column(LABEL)
    if len(set(map(repr, labels))) < 2:
        raise DataError(f"the probe's {what} needs items of at least two labels")
    return items, labels


def probe_evaluator(
    eval_dataset: Any,
    probe: Any,
    columns: Optional[Mapping[str, str]] = None,
    file_extensions: Sequence[str] = (),
    seed: int = 0,
):
    """The evaluator ``fit(probe=...)`` runs: see the module docstring."""
    o = probe_options(probe)
    if eval_dataset is None or (callable(eval_dataset) and not isinstance(eval_dataset, (list, tuple, str))):
        raise ConfigError("probe needs eval_dataset= labelled items (or {'train': ..., 'test': ...})")
    knn_name = f"knn@{o['k']}_accuracy"
    if isinstance(eval_dataset, Mapping) and set(eval_dataset) == {"train", "test"}:
        tr_items, tr_labels = _labelled(eval_dataset["train"], columns, file_extensions, "train set")
        te_items, te_labels = _labelled(eval_dataset["test"], columns, file_extensions, "test set")
        if o["k"] > len(tr_items):
            raise ConfigError(f"probe k={o['k']} is more than the {len(tr_items)} items of the probe's train set")
        ev: Any  # a ProbeEvaluator, KNNEvaluator or ClassificationEvaluator; each gets primary_metric below
        ev = ProbeEvaluator(
            tr_items,
            tr_labels,
            te_items,
            te_labels,
            k=o["k"],
            batch_size=o["batch_size"],
            linear=o["linear"],
            temperature=o["temperature"],
        )
    else:
        items, labels = _labelled(eval_dataset, columns, file_extensions, "eval_dataset")
        if not o["linear"]:
            ev = KNNEvaluator(items, labels, k=o["k"], batch_size=o["batch_size"], temperature=o["temperature"])
            knn_name = f"knn@{min(o['k'], len(items) - 1)}_accuracy"
        else:
            ev = ClassificationEvaluator(
                items,
                labels,
                test_fraction=o["test_fraction"],
                seed=seed,
                k=o["k"],
                batch_size=o["batch_size"],
                linear=True,
            )
            ev.temperature = o["temperature"]
    ev.primary_metric = "linear_probe_accuracy" if o["linear"] else knn_name
    return ev

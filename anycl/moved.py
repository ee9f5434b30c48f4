"""Where the modules of anycl 0.1 went when the package took one sub-package per pipeline stage (issue 28).

Every old dotted path still imports for one release, with a :class:`DeprecationWarning` naming the new
one: ``import anycl.batching`` gives a stand-in whose names are looked up in ``anycl.data.batching``. The
old modules whose names are now packages (``anycl.data``, ``anycl.model``, ...) forward the names the
package does not export itself, with the same warning (:func:`forward`). The CHANGELOG lists the same
table.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional

MOVED: Dict[str, str] = {
    "anycl.rows": "anycl.data.rows",
    "anycl.column_map": "anycl.data.column_map",
    "anycl.column_spec": "anycl.data.column_spec",
    "anycl.item_checks": "anycl.data.item_checks",
    "anycl.stream_rows": "anycl.data.stream_rows",
    "anycl.tables": "anycl.data.tables",
    "anycl.prompts": "anycl.data.prompts",
    "anycl.batching": "anycl.data.batching",
    "anycl.multiview": "anycl.data.views",
    "anycl.search_exact": "anycl.search.rescore",
    "anycl.search_faiss": "anycl.search.faiss_index",
    "anycl.config": "anycl.options.run_config",
    "anycl.fit_config": "anycl.options.fit_config",
    "anycl.fit_fields": "anycl.options.fields",
    "anycl.validation": "anycl.options.validation",
    "anycl.recipes": "anycl.options.recipes",
    "anycl.momentum": "anycl.losses.momentum",
    "anycl.card": "anycl.export.card",
    "anycl.onnx_export": "anycl.export.to_onnx",
    "anycl.model_build": "anycl.model.build",
    "anycl.model_files": "anycl.model.folder",
    "anycl.model_names": "anycl.model.st_names",
    "anycl.tower": "anycl.model.tower",
    "anycl.embed": "anycl.model.embed",
    "anycl.embedding_ops": "anycl.model.embedding_ops",
    "anycl.quantization": "anycl.model.quantization",
    "anycl.lora": "anycl.model.lora",
    "anycl.mining_options": "anycl.mining.options",
    "anycl.mining_rules": "anycl.mining.rules",
    "anycl.mining_shard": "anycl.mining.shard",
    "anycl.mining_guide": "anycl.mining.guide_filter",  # its item_validator, lowest_pair_scores: see SPLIT
    "anycl.embed_cache": "anycl.mining.embed_cache",
    "anycl.evaluators": "anycl.evaluation",
    "anycl.crossmodal": "anycl.evaluation.crossmodal",
    "anycl.probe": "anycl.evaluation.probe",
    "anycl.sampler_base": "anycl.sampling.base",
    "anycl.in_batch_sampler": "anycl.sampling.in_batch",
    "anycl.label_sampler": "anycl.sampling.by_label",
    "anycl.mined_sampler": "anycl.sampling.mined",
    "anycl.multi_dataset": "anycl.sampling.multi_dataset",
    "anycl.training_module": "anycl.training.step",
    "anycl.training_args": "anycl.training.args",
    "anycl.gradcache": "anycl.training.gradcache",
    "anycl.guide": "anycl.training.guide",
    "anycl.checkpoint": "anycl.training.checkpoint",
    "anycl.checkpoint_find": "anycl.training.checkpoint_find",
    "anycl.accelerator": "anycl.training.accelerator",
    "anycl.optimizer": "anycl.training.optimizer",
    "anycl.stream_steps": "anycl.training.stream_steps",
    "anycl.best": "anycl.training.best",
    "anycl.collapse": "anycl.training.collapse",
    "anycl.report_figures": "anycl.report.figures",
    "anycl.report_examples": "anycl.report.examples",
    "anycl.fit_checks": "anycl.fitting.checks",
    "anycl.fit_data": "anycl.fitting.data",
    "anycl.fit_loss": "anycl.fitting.loss",
    "anycl.fit_record": "anycl.fitting.record",
    "anycl.fit_setup": "anycl.fitting.setup",
    "anycl.loss_data": "anycl.fitting.loss_data",
    "anycl.demo": "anycl.cli.demo_job",
    # renamed after 0.1 inside packages that stayed (issue 28: names that say which part they are)
    "anycl.losses.guided": "anycl.losses.guide_mask",
    "anycl.cli.tables": "anycl.cli.table_output",  # the command line's table output (reading tables: anycl.data.tables)
}
# names that left their old module with a split, old module -> {name: new module}
SPLIT: Dict[str, Dict[str, str]] = {
    "anycl.config": {"open_dataset": "anycl.data.open", "DATA_SUFFIXES": "anycl.data.open"},
    "anycl.multi_dataset": {
        **dict.fromkeys(
            ("DATASET", "MultiRows", "is_multi_dataset", "per_dataset", "check_same_columns"), "anycl.data.multi"
        ),
        "MultiLoss": "anycl.losses.multi_dataset",
    },
    "anycl.mining_guide": {"item_validator": "anycl.mining.pairs", "lowest_pair_scores": "anycl.mining.shard"},
    "anycl.report_figures": {
        **dict.fromkeys(("FIGSIZE", "DPI", "COLOURS", "series", "step_line", "step_axis"), "anycl.report.plotting"),
        **dict.fromkeys(
            ("project_2d", "sample_rows", "LEGEND_LABELS", "label_map", "pair_histogram"), "anycl.report.map_figures"
        ),
    },
}
# old modules whose name is now a package: the package forwards the old module's other names
FORWARDED: Dict[str, str] = {
    "anycl.data": "anycl.data.inputs",
    "anycl.evaluation": "anycl.evaluation.retrieval",
    "anycl.mining": "anycl.mining.mine",
    "anycl.model": "anycl.model.contrastive",
    "anycl.report": "anycl.report.build",
    "anycl.sampling": "anycl.sampling.factory",
    "anycl.search": "anycl.search.exact",
    "anycl.training": "anycl.training.trainer",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new} in anycl 0.2; the old path goes in the next release", DeprecationWarning, stacklevel=3
    )


def _lookup(old: str, name: str) -> Any:
    home = SPLIT.get(old, {}).get(name) or MOVED.get(old) or FORWARDED[old]
    module = importlib.import_module(home)
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {old!r} (now {home}) has no attribute {name!r}") from None


class _OldPath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths; each one loads as a stand-in that looks its names up in the new module."""

    def find_spec(self, fullname, path=None, target=None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> Optional[types.ModuleType]:
        return None  # a plain module

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__name__
        _warn(old, MOVED[old])
        module.__doc__ = f"Deprecated path: the code lives in {MOVED[old]}."
        module.__getattr__ = lambda name: _lookup(old, name)  # type: ignore[method-assign]


def install() -> None:
    """Put the old paths' finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _OldPath) for f in sys.meta_path):
        sys.meta_path.append(_OldPath())


def forward(package: str, init_file: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a package that replaced a module of the same name: names the package
    does not export are looked up where the old module's code went, with a DeprecationWarning. A name that
    is one of the package's own sub-modules is left to the import system."""
    folder = Path(init_file).parent

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or (folder / f"{name}.py").exists() or (folder / name).is_dir():
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = _lookup(package, name)
        _warn(f"{package}.{name}", f"{FORWARDED[package]}.{name}")
        return value

    return __getattr__

"""``anycl fit``: train a model from a data file (or a config file) and write the run's folder."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any, Dict, List

from anycl import adapters
from anycl.api import fit
from anycl.errors import ConfigError
from anycl.export.card import command
from anycl.options.fit_config import DEFAULT_RUNS, FIT_OPTIONS, FitConfig
from anycl.options.run_config import RUN_CONFIG_FILE, load_config, parse_value
from anycl.options.trainer_names import TRAINER_ARGS

from .common import add_output_arguments, print_metrics
from .flags import fit_options_help, parse_options


def next_run_dir(base: str = DEFAULT_RUNS) -> str:
    n = 1
    while Path(base, f"run-{n}").exists():
        n += 1
    return str(Path(base, f"run-{n}"))


def run(args, extra: List[str]) -> int:
    config: Dict[str, Any] = load_config(args.config) if args.config else {}
    config.update(parse_options(extra, [*FIT_OPTIONS, *TRAINER_ARGS]))  # transformers' names: read by FitConfig
    for key in ("data", "modality", "loss"):
        value = getattr(args, key)
        if value is not None:  # --modality may be a JSON mapping of sides: '{"anchor": "image", "positive": "text"}';
            # DATA and --loss a mapping of data set names: '{"nli": "nli.csv", "qa": "qa.csv"}' (anycl.data.multi)
            mapping = key == "modality" or value.lstrip().startswith("{")
            config["dataset" if key == "data" else key] = parse_value(value) if mapping else value
    dataset = config.pop("dataset", None)
    if dataset is None:
        raise ConfigError(
            "no dataset: give DATA (a CSV/JSONL/Parquet file, a folder, or a Hugging Face dataset "
            "name) or `dataset:` in the config file"
        )
    modality = config.pop("modality", None)
    if modality is None:
        raise ConfigError(f"no modality: give --modality ({', '.join(adapters.names())}) or `modality:` in the config")
    loss = config.pop("loss", None)
    options = FitConfig.from_mapping(config)  # its names are checked already (load_config, parse_options)
    out = options.output_dir or next_run_dir()  # the next free anycl-runs/run-N unless one is given
    options = options.replace(output_dir=out)
    if args.quiet:
        options = options.replace(progress=False)
    t0 = time.perf_counter()
    with command("anycl " + shlex.join(getattr(args, "argv", []) or [])):  # shown in the model card
        model = fit(dataset, modality=modality, config=options, loss=loss)
    info = model.info
    print(
        f"trained {info.get('steps')} steps on {info.get('train_rows') or 'streamed'} rows in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print(f"model:  {Path(out, 'model')}  (anycl.load; model card {Path(out, 'model', 'README.md')})")
    print(f"report: {Path(out, 'report.html')}")
    print(
        f"config: {Path(out, RUN_CONFIG_FILE)}  (repeat: anycl fit --config {Path(out, RUN_CONFIG_FILE)} "
        f"--output-dir NEW)"
    )
    if info.get("final_metrics"):
        print_metrics({k: v for k, v in info["final_metrics"].items() if k != "step"}, "final metrics:")
    return 0


def add_parser(sub) -> None:
    """The ``fit`` command: DATA, --modality, --loss, --config; every fit option is in the epilog."""
    fit_options = fit_options_help()
    p = sub.add_parser(
        "fit",
        help="train a model; writes the model, its card, config.yaml and report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a contrastive encoder (anycl.fit) and write into --output-dir: model/ (with its "
        "README.md card and config.yaml), config.yaml, report.html + report/*.png, logs/ "
        "(TensorBoard).",
        epilog="fit options (--name value; JSON values such as '{\"temperature\": 0.1}' are parsed):\n"
        + fit_options
        + "\n\nexample:\n  anycl fit pairs.csv --modality text --epochs 1 --output-dir out",
    )
    p.add_argument(
        "data",
        nargs="?",
        metavar="DATA",
        help="CSV/TSV/JSONL/JSON/Parquet file, folder of items, or a Hugging Face dataset name (offline: "
        "only cached datasets) (default: the config's dataset)",
    )
    p.add_argument(
        "--modality",
        metavar="MODALITY",
        help="text, audio, image (a registered adapter), or a JSON mapping of sides such as "
        '\'{"anchor": "image", "positive": "text"}\' (required, here or in --config)',
    )
    p.add_argument(
        "--loss",
        metavar="NAME",
        help="a registered loss name (default: the modality's; text, image and audio: infonce)",
    )
    p.add_argument(
        "--config", metavar="FILE", help="a YAML or JSON file of fit arguments; command-line values win (default: none)"
    )
    add_output_arguments(p)
    p.set_defaults(func=run, takes_extra=True)

"""How ``anycl fit --help`` shows each fit option: its metavar and default (the meaning is
``anycl.options.FIT_OPTIONS``), and which options a shell cannot give."""
import re
from typing import Dict

from .options import FIT_OPTIONS

DEFAULT_RUNS = "anycl-runs"
# fit options on the command line: metavar and default of each (the meaning is anycl.api.FIT_OPTIONS)
PER_MODALITY = "per modality: text {t}, image {i}, audio {a}"
FIT_FLAG_DOCS: Dict[str, tuple] = {
    "model": ("NAME|PATH", "sentence-transformers/all-MiniLM-L6-v2 (packaged, offline) for text"),
    "encoder_options": ("JSON", "{}"),
    "adapter_options": ("JSON", "{}"),
    "head": ("none|mlp|WIDTH", PER_MODALITY.format(t="none", i="mlp", a="mlp") + "; cross-modal 256"),
    "columns": ("JSON", "the convention's names"),
    "loss_options": ("JSON", "the loss's own defaults"),
    "temperature": ("T", "the loss's default (text InfoNCE 0.05)"),
    "sampler": ("NAME", "in_batch"),
    "sampler_options": ("JSON", "{}"),
    "batch_size": ("N", PER_MODALITY.format(t=32, i=256, a=64) + "; larger than the data: the data's size"),
    "epochs": ("N", "1"),
    "max_steps": ("N", "none (epochs decide)"),
    "lr": ("LR", PER_MODALITY.format(t="2e-5", i="1e-3", a="1e-3")),
    "weight_decay": ("W", "0.01"),
    "warmup_ratio": ("R", "0.1"),
    "lr_schedule": ("cosine|linear|constant", "cosine"),
    "max_grad_norm": ("NORM|none", "1.0"),
    "mixed_precision": ("no|bf16|fp16", "no"),
    "gradient_accumulation_steps": ("N", "1"),
    "seed": ("N", "42"),
    "output_dir": ("DIR", f"{DEFAULT_RUNS}/run-N (the first free N)"),
    "overwrite": ("", "off"),
    "eval_dataset": ("DATA", "none"),
    "eval_every": ("N", "after each epoch (and always once before training)"),
    "eval_kind": ("retrieval|sts|triplet|reranking|knn|classification", "from the columns"),
    "probe": ("true|JSON", "off"),
    "views": ("V", "none (pairwise)"),
    "local_views": ("L", "0"),
    "keep_best": ("METRIC", "off"),
    "early_stopping_patience": ("N", "off"),
    "early_stopping_metric": ("METRIC", "keep_best's, else the evaluation's primary metric"),
    "multi_dataset_sampling": ("proportional|round_robin", "proportional"),
    "num_workers": ("N", "0"),
    "on_bad_item": ("raise|skip", "raise"),
    "log_with": ("TRACKER", "tensorboard"),
    "log_every": ("N", "about 100 points per run"),
    "progress": ("true|false", "true (--quiet: false)"),
    "cpu": ("", "off"),
    "gradcache_mini_batch": ("N", "off"),
    "collapse_watch": ("true|false|JSON", "true"),
    "checkpoint_every": ("N", "off"),
    "resume_from": ("latest|DIR", "none"),
    "keep_checkpoints": ("N|none", "2"),
    "peft": ("JSON", "off (full fine-tuning)"),
    "freeze": ("MODALITY|JSON", "none"),
    "guide": ("start|NAME|PATH", "off"),
    "guide_margin": ("M", "0"),
    "guide_margin_strategy": ("absolute|relative", "absolute"),
    "prompts": ("JSON", "none"),
    "include_prompt": ("true|false", "true"),
    "matryoshka_dims": ("JSON", "off"),
    "matryoshka_weights": ("JSON", "all 1"),
    "sep": ("SEP", "',' for .csv, tab for .tsv, or sniffed when clearly ';', tab or '|'"),
}
# Python objects a shell cannot give: refused on the command line, and not listed in --help
HIDDEN_FIT_OPTIONS = ("encoder", "callbacks")


def fit_options_help() -> str:
    """The fit options' section of ``anycl fit --help``: flag, metavar, meaning, default."""

    lines = []
    for name, meaning in FIT_OPTIONS.items():
        if name in HIDDEN_FIT_OPTIONS:
            continue
        metavar, default = FIT_FLAG_DOCS.get(name, ("VALUE", "see anycl.api.FIT_OPTIONS"))
        flag = f"--{name.replace('_', '-')}" + (f" {metavar}" if metavar else "")
        meaning = re.sub(r"\s*\(default\b(?:[^()]|\([^()]*\))*\)", "", meaning)  # the default is said once, below
        lines.append(f"  {flag}\n      {meaning} (default: {default})")
    return "\n".join(lines)

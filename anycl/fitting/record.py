"""``fit``'s record of a finished run: LoRA merged when asked, ``model.info`` (loss, steps, metrics, base
models, the resolved config), and with an output_dir the saved model, ``config.yaml`` and the report."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from anycl.export.card import current_command
from anycl.model.lora import check_options as check_peft
from anycl.model.lora import merge_lora
from anycl.options.fit_config import FitConfig
from anycl.options.run_config import RUN_CONFIG_FILE, config_file_text, resolved_config
from anycl.report.build import write_report
from anycl.training.best import KeepBest

from .loss import LossPlan

log = logging.getLogger("anycl")


def record_run(
    model,
    trainer,
    cfg: FitConfig,
    plan: LossPlan,
    rows,
    callbacks,
    *,
    dataset: Any,
    modality: Any,
    args,
    sampler_options,
    examples,
    output_dir: Union[str, os.PathLike, None],
):
    """Everything after training; returns the model to hand back."""
    if cfg.peft and check_peft(cfg.peft)["merge"]:
        merge_lora(model)  # a plain model from here on: saved and exported like any other
    model.info.update(
        {
            "loss": plan.name,
            "loss_options": {k: v for k, v in plan.loss_options.items() if isinstance(v, (int, float, str, bool))},
            "train_rows": None if rows.streaming else len(rows),
            "steps": trainer.global_step,
            "final_metrics": shipped_metrics(trainer, callbacks),
            "baseline_metrics": trainer.eval_history[0]
            if len(trainer.eval_history) > 1 and trainer.eval_history[0].get("step") == 0
            else None,
        }
    )
    if plan.matryoshka is not None:
        model.info["matryoshka"] = {"dims": plan.matryoshka[0], "weights": plan.matryoshka[1]}
    if cfg.peft:
        model.info["peft"] = {k: v for k, v in check_peft(cfg.peft).items() if v is not None}
    if current_command():  # the command line that started the run (anycl.export.card.command)
        model.info["command"] = current_command()
    for cb in callbacks:
        if getattr(cb, "stopped_step", None) is not None:  # anycl.training.best.EarlyStopping ended the run
            model.info["early_stopping"] = {
                "metric": cb.metric,
                "best": cb.best,
                "best_step": cb.best_step,
                "stopped_step": cb.stopped_step,
            }
    model.info["config"] = resolved_config(
        dataset,
        modality,
        plan.loss,
        cfg.options(),
        args=args,
        loss_name=model.info["loss"],
        loss_options=plan.recorded_options(),
        sampler_options=sampler_options if isinstance(cfg.sampler or "in_batch", str) else None,
    )
    record_base_models(model, cfg)
    model.trainer = trainer  # history and evaluation results for the caller (not saved)
    if output_dir and (trainer.accelerator is None or trainer.accelerator.is_main_process):  # once, not per process
        model.save(os.path.join(output_dir, "model"), overwrite=True)
        (Path(output_dir) / RUN_CONFIG_FILE).write_text(config_file_text(model.info["config"]))
        page = write_report(output_dir, model, trainer, rows, model.info["config"], seed=args.seed, examples=examples)
        if not current_command():  # `anycl fit` prints its own summary
            line = summary_line(model.info, getattr(trainer, "train_seconds", None), output_dir, page)
            if args.progress:
                print(line)
            else:
                log.info(line)
    return model


def shipped_metrics(trainer, callbacks) -> Optional[Dict[str, Any]]:
    """The evaluation of the weights the run hands back: the last one, or under ``keep_best`` (which restored
    the best weights) the evaluation at the best step, so the card and report give the saved model's scores."""
    history = trainer.eval_history
    final = history[-1] if history else None
    for cb in callbacks:
        if isinstance(cb, KeepBest) and cb.restore and cb.best_step is not None:
            at_best = [h for h in history if h.get("step") == cb.best_step]
            # a resumed run may lack the evaluation's record: the watched metric is known either way
            final = at_best[-1] if at_best else {"step": cb.best_step, cb.metric: cb.best}
    return final


def summary_line(info, seconds: Optional[float], output_dir: Union[str, os.PathLike], page: Path) -> str:
    """What Python's ``fit`` prints at the end of a run with an output_dir (``anycl fit`` prints the same
    facts on several lines)."""
    rows = info.get("train_rows") or "streamed"
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    return (
        f"anycl.fit: trained {info.get('steps')} steps on {rows} rows{took}; "
        f"model: {Path(output_dir, 'model')}; report: {page}"
    )


def record_base_models(model, cfg: FitConfig) -> None:
    """``info["base_model"]`` ({modality: what training started from}) and the ``model:`` key of the run's
    config (the packaged default text model is written as its Hub id, which reruns offline too)."""
    bases = {}
    for name, tower in model.towers.items():
        spec = getattr(tower.encoder, "anycl_spec", None) or {}
        if spec.get("base_model"):
            bases[name] = spec["base_model"]
    model.info["base_model"] = bases
    recorded = model.info.get("config")
    if recorded is not None and recorded.get("model") is None and bases and cfg.encoder is None:
        chosen = next(iter(bases.values())) if len(bases) == 1 and len(model.towers) == 1 else bases
        items = list(recorded.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "loss"), len(items))
        items.insert(at, ("model", chosen))
        recorded.clear()
        recorded.update(items)

"""``fit``'s distillation stage (``teacher=``, ``distill_weight``, ``teacher_options``; ``loss="distill"``).

Before any model loads, :func:`plan_distillation` checks the options and wraps the chosen loss in
:class:`~anycl.losses.distill_views.ViewDistill` (``contrastive + distill_weight · distill``; ``loss="distill"``
is distillation alone). Once the student is built, :func:`make_teacher` opens the teacher
(:mod:`anycl.model.distill_teacher`), sizes the projection from the student's width to the teacher's and, with
``teacher_options={"cache": True}``, embeds every row's item once (its unaugmented view) and stores the vectors
with the rows; otherwise the teacher embeds each batch's views as training goes.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from anycl.errors import ConfigError, unknown_options
from anycl.losses.distill_views import ViewDistill
from anycl.losses.momentum import embedding_width
from anycl.model.distill_teacher import ViewTeacher, open_view_teacher
from anycl.options.fit_config import FitConfig

from .loss import LossPlan
from .loss_data import rows_with_teacher

log = logging.getLogger("anycl")

DEFAULT_WEIGHT = 1.0
TEACHER_OPTIONS = {"cache": False, "projection": "linear", "batch_size": 64}


def teacher_options(given: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``teacher_options`` with their defaults, checked."""
    given = dict(given or {})
    unknown = [k for k in given if k not in TEACHER_OPTIONS]
    if unknown:
        raise unknown_options("teacher_options", unknown, sorted(TEACHER_OPTIONS))
    opts = {**TEACHER_OPTIONS, **given}
    if not isinstance(opts["cache"], bool):
        raise ConfigError(f"teacher_options['cache'] must be true or false, got {opts['cache']!r}")
    size = opts["batch_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"teacher_options['batch_size'] must be an integer >= 1, got {size!r}")
    return opts


def plan_distillation(cfg: FitConfig, plan: LossPlan, multi: bool, counts) -> Optional[Dict[str, Any]]:
    """Check the distillation options against the loss and wrap ``plan.loss_fn``; the teacher options, or None
    when nothing is distilled."""
    given_loss = plan.loss_fn
    alone = isinstance(given_loss, ViewDistill) and given_loss.inner is None
    if cfg.teacher is None:
        given = [k for k in ("distill_weight", "teacher_options") if getattr(cfg, k) is not None]
        if alone:
            raise ConfigError(
                "loss='distill' needs a teacher: fit(..., teacher=<anycl model, backbone name or module>)"
            )
        if given:
            raise ConfigError(f"{given} need teacher= (an anycl model, a backbone name or an nn.Module)")
        return None
    opts = teacher_options(cfg.teacher_options)
    if getattr(plan.loss_fn, "needs_teacher", False):
        raise ConfigError(
            "teacher= distils the teacher's features of the views; loss_options={'teacher': ...} of "
            f"{plan.name!r} already gives one: use one of the two"
        )
    if multi:
        raise ConfigError("teacher= trains one data set; several data sets with a teacher are not supported yet")
    if counts is not None:
        raise ConfigError("teacher= works with two views per item; leave views/local_views unset")
    weight = DEFAULT_WEIGHT if cfg.distill_weight is None else float(cfg.distill_weight)
    if isinstance(given_loss, ViewDistill) and alone:
        if cfg.distill_weight is not None:
            raise ConfigError(
                "distill_weight weighs distillation against a contrastive loss; loss='distill' has none "
                "(leave distill_weight unset, or give loss='infonce' etc.)"
            )
        given_loss.projection_kind = str(opts["projection"])
    elif weight == 0:
        log.info("distill_weight=0: the teacher is not used")
        return None
    else:
        plan.loss_fn = ViewDistill(plan.loss_fn, weight, str(opts["projection"]))
    plan.losses = {name: plan.loss_fn for name in plan.losses}
    return opts


def make_teacher(
    cfg: FitConfig, plan: LossPlan, opts: Optional[Dict[str, Any]], model, sides: Mapping[str, str], parts
) -> Tuple[Optional[ViewTeacher], Dict[str, Any]]:
    """The teacher of a distilling run and the rows (with each item's teacher vector when cached); the loss's
    projection sized from the student's width to the teacher's. (None, parts) when nothing is distilled."""
    if opts is None:
        return None, parts
    modality = sides["anchor"]
    teacher = ViewTeacher(
        open_view_teacher(cfg.teacher, modality), modality, opts["batch_size"], cache=bool(opts["cache"])
    )
    width = embedding_width(model)
    if width is None:
        raise ConfigError("teacher=: the student's embedding width is unknown; give it a head (head=<width>)")
    assert isinstance(plan.loss_fn, ViewDistill)
    plan.loss_fn.build_projection(width, teacher.dim)
    log.info(
        "distilling the %s teacher (%d wide) through a %s projection from the student's %d; %s",
        modality,
        teacher.dim,
        plan.loss_fn.projection_kind,
        width,
        "each item embedded once (cache)" if teacher.cache else "each view embedded as training goes",
    )
    if not teacher.cache:
        return teacher, parts
    out = {}
    for name, rows in parts.items():
        if rows.streaming:
            raise ConfigError(
                "teacher_options cache embeds every row before training, which a streamed dataset does not "
                "allow; load the data, or leave cache off"
            )
        teacher.both_cached = not rows.has_positive  # self-supervised: both views are of the same item
        out[name] = rows_with_teacher(rows, teacher.embed_items(rows.column("anchor")))
    return teacher, out

"""The report's verdicts: is training working? Each rule reads what the run logged and says so in words.

A :class:`Verdict` is ``ok`` (green: the rule holds), ``bad`` (red: it does not), ``warn`` (amber: the run is
too short to judge) or ``unknown`` (grey: nothing to judge it by). The rules and their thresholds (also in
docs/cli.md, "The training report"):

- **steps** (:func:`steps_rule`): fewer than :data:`MIN_STEPS` optimiser steps is too few to read the curves.
- **loss** (:func:`loss_rule`): the mean of the last :data:`TAIL` logged losses must be below the first logged
  loss by at least :data:`LOSS_MIN_DROP` of its size.
- **collapse** (:func:`collapse_rule`): the last logged spread must stay at or above the collapse watch's
  threshold (0.1) and its relative threshold (0.2 × the first spread), and random pairs of items must score a
  mean cosine similarity of at most :data:`RANDOM_PAIR_MAX` with the trained model.
- **gap** (:func:`gap_rule`): the mean over the last :data:`TAIL` logged steps of (anchor · positive − anchor ·
  hardest in-batch negative) must be above 0 (else "inverted"), and not below the same mean over the first
  :data:`TAIL` steps by more than :data:`GAP_TOLERANCE` (else "closing"). An inverted gap is amber, not red,
  when the neighbours verdict holds (the hardest "negative" is then most likely an item of the anchor's class).
- **evaluation** (:func:`eval_rule`): the evaluator's primary metric (else the first logged one) after training
  must beat its value before training (step 0) by more than :data:`EVAL_MIN_GAIN`.
- **neighbours** (:func:`neighbour_rule`): with labels, the share of items whose nearest other item has their
  label must beat chance (a random pick) by at least :data:`NEIGHBOUR_SIGMAS` standard errors.
"""

from __future__ import annotations

import math
from typing import Any, List, Mapping, NamedTuple, Optional, Sequence

MIN_STEPS = 50
TAIL = 3
LOSS_MIN_DROP = 0.01
RANDOM_PAIR_MAX = 0.9
GAP_TOLERANCE = 0.02
EVAL_MIN_GAIN = 0.001
NEIGHBOUR_SIGMAS = 2.0

OK, BAD, WARN, UNKNOWN = "ok", "bad", "warn", "unknown"


class Verdict(NamedTuple):
    """One rule's conclusion: ``rule`` (its name), ``status`` (ok / bad / warn / unknown), ``text`` (a
    sentence)."""

    rule: str
    status: str
    text: str


def _series(history: Sequence[Mapping[str, Any]], key: str) -> List[float]:
    return [
        float(h[key])
        for h in history
        if isinstance(h.get(key), (int, float)) and not isinstance(h.get(key), bool) and not math.isnan(h[key])
    ]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def steps_rule(steps: Optional[int]) -> Verdict:
    if steps is None:
        return Verdict("steps", UNKNOWN, "The number of optimiser steps is not known.")
    if steps < MIN_STEPS:
        return Verdict(
            "steps",
            WARN,
            f"Too few steps to judge: {steps} optimiser step{'s' if steps != 1 else ''} (under {MIN_STEPS}); the "
            "curves below are a few noisy points. Train longer (more epochs or max_steps) before reading them.",
        )
    return Verdict("steps", OK, f"{steps} optimiser steps (at least {MIN_STEPS}).")


def loss_rule(history: Sequence[Mapping[str, Any]]) -> Verdict:
    loss = _series(history, "loss")
    if len(loss) < 2:
        return Verdict("loss", UNKNOWN, "One logged loss: whether it fell cannot be told.")
    first, last = loss[0], _mean(loss[1:][-TAIL:])
    drop = first - last
    if drop > LOSS_MIN_DROP * max(abs(first), 1e-12):
        return Verdict("loss", OK, f"The loss fell from {first:.4f} to {last:.4f} ({100 * drop / abs(first):.0f} %).")
    return Verdict(
        "loss",
        BAD,
        f"The loss did not fall: {first:.4f} at the first logged step, {last:.4f} at the end (a fall of at least "
        f"{100 * LOSS_MIN_DROP:g} % is expected). Try a higher learning rate, more steps, or check the pairs.",
    )


def collapse_rule(
    history: Sequence[Mapping[str, Any]],
    threshold: float = 0.1,
    relative: float = 0.2,
    random_pair_cosine: Optional[float] = None,
) -> Verdict:
    spread = _series(history, "spread")
    problems, facts = [], []
    if spread:
        floor = max(threshold, relative * spread[0])
        facts.append(f"spread {spread[0]:.2f} → {spread[-1]:.2f}")
        if spread[-1] < threshold:
            problems.append(f"the spread fell to {spread[-1]:.3f}, below the warning threshold {threshold:g}")
        elif spread[-1] < relative * spread[0]:
            problems.append(f"the spread fell to {spread[-1]:.3f}, below {relative:g} × its first value ({floor:.3f})")
    if random_pair_cosine is not None:
        facts.append(f"random pairs score {random_pair_cosine:.2f} on average")
        if random_pair_cosine > RANDOM_PAIR_MAX:
            problems.append(
                f"random pairs of items score a mean cosine of {random_pair_cosine:.2f} (above {RANDOM_PAIR_MAX:g}): "
                "most inputs map to nearly one point"
            )
    if not facts:
        return Verdict("collapse", UNKNOWN, "No spread was logged and no items were embedded: collapse is not known.")
    if problems:
        return Verdict(
            "collapse",
            BAD,
            "Collapse: " + "; ".join(problems) + ". Lower the learning rate, check the augmentations, or for "
            "negative-free losses keep the predictor / momentum target / variance term.",
        )
    return Verdict("collapse", OK, "No collapse: " + ", ".join(facts) + ".")


def gap_rule(history: Sequence[Mapping[str, Any]]) -> Verdict:
    gaps = [
        (float(h["positive"]), float(h["hardest_negative"]))
        for h in history
        if isinstance(h.get("positive"), (int, float))
        and isinstance(h.get("hardest_negative"), (int, float))
        and not math.isnan(h["positive"])
        and not math.isnan(h["hardest_negative"])
    ]
    if not gaps:
        return Verdict("gap", UNKNOWN, "No positive / hardest-negative similarities were logged.")
    pos, neg = _mean([p for p, _ in gaps[-TAIL:]]), _mean([n for _, n in gaps[-TAIL:]])
    last = pos - neg
    first = _mean([p - n for p, n in gaps[:TAIL]])
    if last <= 0:
        return Verdict(
            "gap",
            BAD,
            f"Inverted gap: at the end the hardest in-batch negative scores {neg:.2f} on average, above the "
            f"positive ({pos:.2f}): another row of the batch outranks the anchor's own positive.",
        )
    if len(gaps) > TAIL and last < first - GAP_TOLERANCE:
        return Verdict(
            "gap",
            BAD,
            f"Closing gap: positive − hardest negative fell from {first:.2f} to {last:.2f}; training is pulling "
            "wrong items closer.",
        )
    return Verdict("gap", OK, f"The gap is open: positive {pos:.2f} vs hardest negative {neg:.2f} (was {first:+.2f}).")


def eval_rule(eval_history: Sequence[Mapping[str, Any]], primary: Optional[str] = None) -> Verdict:
    if not eval_history:
        return Verdict("evaluation", UNKNOWN, "No evaluation: give eval_dataset (or probe=) to measure progress.")
    if len(eval_history) < 2 or eval_history[0].get("step") != 0:
        return Verdict("evaluation", UNKNOWN, "No evaluation before training (step 0) to compare with.")
    base, final = eval_history[0], eval_history[-1]
    names = [k for k, v in final.items() if k != "step" and isinstance(v, (int, float))]
    metric = primary if primary in names else (names[0] if names else None)
    if metric is None or not isinstance(base.get(metric), (int, float)):
        return Verdict("evaluation", UNKNOWN, "The evaluation logged no metric to compare.")
    before, after = float(base[metric]), float(final[metric])
    if after - before > EVAL_MIN_GAIN:
        return Verdict("evaluation", OK, f"{metric} rose from {before:.4f} before training to {after:.4f}.")
    return Verdict(
        "evaluation",
        BAD,
        f"{metric} is not better than before training: {before:.4f} at step 0, {after:.4f} at the end.",
    )


def neighbour_rule(agreement: Optional[Mapping[str, Mapping[str, float]]], source: str = "label") -> Verdict:
    after = (agreement or {}).get("after")
    if not after:
        return Verdict("neighbours", UNKNOWN, "No labels: whether near items share a class is not known.")
    rate, chance, se = after["rate"], after["chance"], after["stderr"]
    before = (agreement or {}).get("before")
    was = f"; {before['rate']:.3f} before training" if before else ""
    what = "class folder" if source == "folder" else "label"
    said = (
        f"{rate:.3f} of {int(after['items'])} items have a nearest neighbour of their {what}{was}; a random pick "
        f"gives {chance:.3f}"
    )
    if rate >= chance + NEIGHBOUR_SIGMAS * se and rate > chance:
        return Verdict("neighbours", OK, f"Neighbours share {what}s: {said}.")
    return Verdict("neighbours", BAD, f"Neighbours are at chance: {said} (±{se:.3f}).")


def verdicts(
    history: Sequence[Mapping[str, Any]],
    eval_history: Sequence[Mapping[str, Any]],
    steps: Optional[int],
    threshold: float = 0.1,
    relative: float = 0.2,
    random_pair_cosine: Optional[float] = None,
    primary_metric: Optional[str] = None,
    agreement: Optional[Mapping[str, Mapping[str, float]]] = None,
    label_source: str = "label",
) -> List[Verdict]:
    """Every rule's verdict, in the order the Health section lists them.

    An inverted gap while neighbours share labels is amber, not red: with several items of one class in a
    batch, the hardest "negative" is most likely an item of the anchor's own class, which should score high."""
    gap, neighbours = gap_rule(history), neighbour_rule(agreement, label_source)
    if gap.status == BAD and gap.text.startswith("Inverted") and neighbours.status == OK:
        gap = Verdict(
            "gap",
            WARN,
            gap.text + " Neighbours share labels, so that row is most likely an item of the anchor's own class (a "
            "batch holds several); the neighbours verdict is the better guide here.",
        )
    return [
        steps_rule(steps),
        loss_rule(history),
        collapse_rule(history, threshold, relative, random_pair_cosine),
        gap,
        eval_rule(eval_history, primary_metric),
        neighbours,
    ]


def headline(found: Sequence[Verdict]) -> str:
    """One sentence over all verdicts."""
    bad = [v.rule for v in found if v.status == BAD]
    if bad:
        return f"Something is wrong: {', '.join(bad)} ({len(bad)} of {len(found)} checks failed)."
    if any(v.status == WARN for v in found):
        return f"No check failed; {', '.join(v.rule for v in found if v.status == WARN)} to read with care (amber)."
    if all(v.status == UNKNOWN for v in found):
        return "Nothing to judge the run by."
    return "Training looks healthy: every check that could be made holds."

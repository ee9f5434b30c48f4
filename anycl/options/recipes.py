"""Named recipes: bundles of :func:`anycl.fit` options that were measured together.

``fit(pairs, modality="text", recipe="hard-negatives")`` is the same as passing the recipe's options
yourself; any option you also pass wins (for ``sampler_options`` key by key, so
``recipe="hard-negatives", sampler_options={"num_negatives": 7}`` keeps the recipe's other sampler options).
The run records ``recipe`` and the options it resolved to (``config.yaml``).

- ``"hard-negatives"``: hard negatives mined once per epoch with the model being trained (the first pass with
  the starting model), **one per row**, keeping only candidates that score below 95 % of the row's
  positive (``relative_margin=0.05``) against false negatives, with in-batch negatives as usual. Chosen on
  the FOLDOC and GCIDE dev splits (``benchmarks/results/text_quality_dev.md``; see docs/text.md). It mined
  three per row until 2026-12-06: one gives the same nDCG@10 at equal data on both dev sets (−0.0015 and
  +0.0011, intervals across 0) at 0.6× the training time and 1.1–1.2× the defaults' peak memory instead of
  1.5–1.7× (``benchmarks/results/text_recipe_time.md``); read once on the test splits it lost 0.004 on FOLDOC
  and tied on GCIDE (``text_quality_test.md``). ``sampler_options={"num_negatives": 3}`` is the old one.

Recipes import nothing from anycl, so :mod:`anycl.options.fit_config` can read them.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

RECIPES: Dict[str, Dict[str, Any]] = {
    "hard-negatives": {
        "sampler": "mined",
        "sampler_options": {"num_negatives": 1, "relative_margin": 0.05},
    },
}

MERGED_KEYS = ("sampler_options", "loss_options")  # mappings merged key by key (the user's keys win)


def apply_recipe(options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` with its ``recipe``'s options filled in where not given (``recipe`` itself is kept).

    Raises KeyError naming the recipe when it is unknown (the caller turns it into a ConfigError)."""
    out = dict(options)
    name = out.get("recipe")
    if name is None:
        return out
    recipe = RECIPES[name]
    for key, value in recipe.items():
        given = out.get(key)
        if given is None:
            out[key] = dict(value) if isinstance(value, Mapping) else value
        elif key in MERGED_KEYS and isinstance(given, Mapping) and isinstance(value, Mapping):
            if key == "sampler_options" and out.get("sampler") != recipe.get("sampler"):
                continue  # another sampler than the recipe's: its options are the user's alone
            out[key] = {**value, **given}
    return out

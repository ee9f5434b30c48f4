"""Named recipes (anycl.options.recipes): what they fill in, what the user's own options override, and through fit."""

import copy

import pytest

import anycl
from anycl.errors import ConfigError
from anycl.options.fit_config import FitConfig
from anycl.options.recipes import RECIPES, apply_recipe


def test_recipe_fills_in_what_was_not_given():
    out = apply_recipe({"recipe": "hard-negatives", "lr": 1e-4})
    assert out["sampler"] == "mined" and out["sampler_options"] == {"num_negatives": 1, "relative_margin": 0.05}
    assert out["lr"] == 1e-4 and out["recipe"] == "hard-negatives"
    assert apply_recipe({"lr": 1e-4}) == {"lr": 1e-4}  # no recipe: unchanged


def test_user_options_win_key_by_key():
    table = copy.deepcopy(RECIPES)
    out = apply_recipe({"recipe": "hard-negatives", "sampler_options": {"num_negatives": 7, "refresh_every": 5}})
    assert out["sampler_options"] == {"num_negatives": 7, "relative_margin": 0.05, "refresh_every": 5}
    # another sampler: the recipe's sampler options are not forced on it
    out = apply_recipe({"recipe": "hard-negatives", "sampler": "in_batch", "sampler_options": {"shuffle": False}})
    assert out["sampler"] == "in_batch" and out["sampler_options"] == {"shuffle": False}
    assert RECIPES == table  # the table is not mutated


@pytest.mark.parametrize("bad, match", [("hard-negative", "did you mean 'hard-negatives'"), (["x"], "unknown recipe")])
def test_unknown_recipe_is_a_clear_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        FitConfig.build(None, {"recipe": bad})
    with pytest.raises(ConfigError, match="recipe"):
        anycl.fit([{"anchor": "a", "positive": "b"}] * 4, modality="text", recipe=bad)


def test_fit_with_the_hard_negatives_recipe(text_pairs, tiny_text_encoder):
    model = anycl.fit(
        text_pairs,
        modality="text",
        recipe="hard-negatives",
        encoder=copy.deepcopy(tiny_text_encoder),
        batch_size=8,
        max_steps=2,
        progress=False,
        log_with=None,
        seed=0,
        sampler_options={"relative_margin": 0.5, "verbose": False},
        adapter_options={"max_seq_length": 16},
    )
    sampler = model.trainer.sampler
    assert type(sampler).__name__ == "MinedNegativeSampler" and sampler.num_negatives == 1
    cfg = model.info["config"]
    assert cfg["recipe"] == "hard-negatives" and cfg["sampler"] == "mined"
    assert cfg["sampler_options"]["num_negatives"] == 1 and cfg["sampler_options"]["relative_margin"] == 0.5

"""FitConfig: one typed list of fit's options — names, defaults, help, per-modality defaults, validation,
YAML/JSON round trips — and ``fit(..., config=..., **overrides)`` built from it."""

import dataclasses
import json

import pytest
import yaml
from toy_modality import toy_rows

import anycl
from anycl import adapters
from anycl.api import FIT_OPTIONS
from anycl.errors import ConfigError
from anycl.options.fit_config import FIT_FLAG_DOCS, HIDDEN_FIT_OPTIONS, TRAINING_KEYS, FitConfig
from anycl.options.run_config import load_config, resolved_config
from anycl.training.trainer import TrainingArgs

TOY = dict(batch_size=8, progress=False, log_with=None, seed=3)


def test_the_fields_are_the_options_each_documented_once():
    names = [f.name for f in dataclasses.fields(FitConfig)]
    assert names[0] == "loss" and set(names) - {"loss"} == set(FIT_OPTIONS)
    for f in dataclasses.fields(FitConfig):
        assert f.metadata["help"].strip(), f.name
    assert set(HIDDEN_FIT_OPTIONS) == {"encoder", "callbacks"}
    assert set(FIT_FLAG_DOCS) == set(FIT_OPTIONS) - set(HIDDEN_FIT_OPTIONS)
    # every resolved training value is a field of the trainer's arguments
    assert set(TRAINING_KEYS) <= {f.name for f in dataclasses.fields(TrainingArgs)}


def test_unknown_names_are_config_errors_with_the_closest_valid_one():
    with pytest.raises(
        ConfigError,
        match=r"unknown fit option\(s\) \['bach_size'\] \(did you mean 'batch_size'\?\); "
        r"valid options: .*lr",
    ):
        FitConfig.from_mapping({"bach_size": 8})
    with pytest.raises(ConfigError, match=r"unknown fit option\(s\) \['bach_size'\] \(did you mean 'batch_size'\?\)"):
        anycl.fit(toy_rows(8), modality="toyvec", bach_size=8)
    with pytest.raises(ConfigError, match="config must be a FitConfig or a mapping"):
        anycl.fit(toy_rows(8), modality="toyvec", config=["batch_size", 8])
    with pytest.raises(TypeError):  # a typo in Python code is a TypeError, as for any dataclass
        FitConfig(bach_size=8)


def test_given_options_are_remembered_even_at_their_default_value():
    cfg = FitConfig.from_mapping({"collapse_watch": True, "lr": 1e-3})
    assert cfg.given() == {"lr": 1e-3, "collapse_watch": True}  # field order, not the mapping's
    assert FitConfig(lr=1e-3).given() == {"lr": 1e-3}  # built directly: what differs from the defaults
    assert FitConfig().given() == {}
    assert cfg.replace(lr=2e-3).given() == {"lr": 2e-3, "collapse_watch": True}
    assert FitConfig.from_mapping({"loss": "dcl", "lr": 1e-3}).options() == {"lr": 1e-3}


def test_build_puts_keyword_arguments_over_the_config():
    base = FitConfig(batch_size=16, epochs=2)
    cfg = FitConfig.build(base, {"batch_size": 4})
    assert (cfg.batch_size, cfg.epochs) == (4, 2)
    assert FitConfig.build({"lr": 0.5}, {"seed": 1}).given() == {"lr": 0.5, "seed": 1}
    assert FitConfig.build(None, None).given() == {}


def test_yaml_and_json_round_trips():
    cfg = FitConfig(
        loss="infonce",
        batch_size=16,
        lr=1e-4,
        loss_options={"temperature": 0.1},
        columns={"anchor": "q", "positive": "d"},
        matryoshka_dims=[64, 32],
        keep_best="ndcg@10",
    )
    assert FitConfig.from_yaml(cfg.to_yaml()) == cfg
    assert FitConfig.from_json(cfg.to_json()) == cfg
    assert yaml.safe_load(cfg.to_yaml()) == json.loads(cfg.to_json()) == cfg.to_dict()
    assert FitConfig.from_yaml(cfg.to_yaml()) != cfg.replace(lr=1e-3)
    with pytest.raises(ConfigError, match=r"unknown config option\(s\) \['epoch'\] \(did you mean 'epochs'\?\)"):
        FitConfig.from_yaml("epoch: 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        FitConfig.from_json("[1, 2]")


def test_a_run_config_file_loads_as_a_fit_config(tmp_path):
    (tmp_path / "run.yaml").write_text("dataset: data.csv\nmodality: text\nloss: infonce\nbatch_size: 16\n")
    data = load_config(str(tmp_path / "run.yaml"))
    cfg = FitConfig.from_mapping({k: v for k, v in data.items() if k not in ("dataset", "modality")})
    assert cfg.given() == {"loss": "infonce", "batch_size": 16}


def test_validation_is_anycl_validation():
    with pytest.raises(ConfigError, match="warmup_ratio must be a finite number >= 0 and <= 1, got 1.5"):
        FitConfig(warmup_ratio=1.5).validate()
    with pytest.raises(ConfigError, match="lr_schedule must be"):
        FitConfig(lr_schedule="step").validate()
    assert FitConfig(batch_size=8).validate().batch_size == 8


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_per_modality_defaults_come_from_the_adapter(modality):
    fit_defaults = adapters.ADAPTERS.lookup(modality).fit_defaults
    values = FitConfig().training_values(fit_defaults)
    assert values["batch_size"] == fit_defaults["batch_size"] and values["lr"] == fit_defaults["lr"]
    assert FitConfig(batch_size=3, lr=0.5).training_values(fit_defaults)["batch_size"] == 3
    # the rest are TrainingArgs' own defaults
    plain = TrainingArgs()
    assert values["lr_schedule"] == fit_defaults.get("lr_schedule", plain.lr_schedule)
    for k in (
        "epochs",
        "max_steps",
        "weight_decay",
        "warmup_ratio",
        "max_grad_norm",
        "mixed_precision",
        "gradient_accumulation_steps",
        "seed",
        "log_every",
        "eval_every",
        "num_workers",
    ):
        assert values[k] == getattr(plain, k), k


def test_fit_takes_a_config_and_overrides_win():
    cfg = FitConfig(batch_size=4, epochs=1, lr=1e-3)
    model = anycl.fit(toy_rows(16), "toyvec", config=cfg, batch_size=8, progress=False, log_with=None, seed=3)
    recorded = model.info["config"]
    assert recorded["batch_size"] == 8 and recorded["lr"] == 1e-3  # 16 rows / 8 = 2 steps
    assert model.trainer.global_step == 2
    same = anycl.fit(toy_rows(16), "toyvec", epochs=1, lr=1e-3, **TOY)
    assert all(v.equal(same.state_dict()[k]) for k, v in model.state_dict().items())


def test_resolved_config_records_given_and_resolved_values():
    args = TrainingArgs(**FitConfig(lr=1e-3).training_values({"batch_size": 64, "lr": 1e-3}))
    cfg = resolved_config("data.csv", "text", "infonce", {"lr": 1e-3, "keep_best": "ndcg@10"}, args=args)
    assert cfg["batch_size"] == 64 and cfg["lr"] == 1e-3 and cfg["keep_best"] == "ndcg@10"
    assert set(TRAINING_KEYS) <= set(cfg)


def test_an_option_given_as_none_trains_as_its_default():
    # on_bad_item=None (its default) once reached the batch builder as None and failed there
    given_none = anycl.fit(toy_rows(16), "toyvec", epochs=1, on_bad_item=None, **TOY)
    default = anycl.fit(toy_rows(16), "toyvec", epochs=1, **TOY)
    assert given_none.trainer.builder.on_bad_item == "raise"
    assert all(v.equal(default.state_dict()[k]) for k, v in given_none.state_dict().items())


def test_every_field_has_a_type_more_precise_than_any_except_the_data():
    loose = [f.name for f in dataclasses.fields(FitConfig) if f.type == "Any"]
    assert loose == ["eval_dataset"]  # any data anycl.data.to_rows reads, or a callable(model)

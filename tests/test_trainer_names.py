"""transformers' / sentence-transformers' trainer argument names given to fit: each read as the fit option it
is (anycl/options/trainer_names.py's one table), or refused naming the option to use; the migration table of
docs/text.md and the loss table of docs/losses.md are the code's tables."""

import copy
from pathlib import Path

import pytest

import anycl
from anycl.errors import ConfigError
from anycl.losses.st_names import loss_table
from anycl.options.fit_config import NAMES, FitConfig
from anycl.options.run_config import check_keys
from anycl.options.trainer_names import TRAINER_ARGS, migration_table

DOCS = Path(__file__).resolve().parents[1] / "docs"


def given(**kw):
    return FitConfig.build(None, kw).given()


ALIASES = [
    ({"num_train_epochs": 3}, {"epochs": 3}),
    ({"evaluator": "dev.csv"}, {"eval_dataset": "dev.csv"}),
    ({"num_train_epochs": 2.0}, {"epochs": 2}),
    ({"per_device_train_batch_size": 64}, {"batch_size": 64}),
    ({"learning_rate": 3e-5}, {"lr": 3e-5}),
    ({"lr_scheduler_type": "linear"}, {"lr_schedule": "linear"}),
    ({"lr_scheduler_type": "cosine"}, {"lr_schedule": "cosine"}),
    ({"lr_scheduler_type": "constant_with_warmup"}, {"lr_schedule": "constant"}),
    ({"overwrite_output_dir": True}, {"overwrite": True}),
    ({"fp16": True}, {"mixed_precision": "fp16"}),
    ({"bf16": True}, {"mixed_precision": "bf16"}),
    ({"fp16": False, "bf16": True}, {"mixed_precision": "bf16"}),
    ({"fp16": False}, {}),
    ({"use_cpu": True}, {"cpu": True}),
    ({"no_cuda": True}, {"cpu": True}),
    ({"eval_steps": 100}, {"eval_every": 100}),
    ({"save_steps": 500}, {"checkpoint_every": 500}),
    ({"save_total_limit": 3}, {"keep_checkpoints": 3}),
    ({"logging_steps": 10}, {"log_every": 10}),
    ({"report_to": "none"}, {"log_with": None}),
    ({"report_to": "all"}, {"log_with": "tensorboard"}),
    ({"report_to": ["wandb"]}, {"log_with": ["wandb"]}),
    ({"disable_tqdm": True}, {"progress": False}),
    ({"dataloader_num_workers": 2}, {"num_workers": 2}),
    ({"load_best_model_at_end": True}, {"keep_best": True}),
    ({"load_best_model_at_end": False}, {}),
    ({"load_best_model_at_end": True, "metric_for_best_model": "ndcg@10"}, {"keep_best": "ndcg@10"}),
    ({"batch_sampler": "no_duplicates"}, {"sampler": "in_batch"}),
    ({"batch_sampler": "group_by_label"}, {"sampler": "group_by_label"}),
    ({"multi_dataset_batch_sampler": "round_robin"}, {"multi_dataset_sampling": "round_robin"}),
    ({"resume_from_checkpoint": "latest"}, {"resume_from": "latest"}),
]


@pytest.mark.parametrize("hf, ours", ALIASES, ids=[next(iter(h)) for h, _ in ALIASES])
def test_trainer_names_are_read_as_fit_options(hf, ours):
    assert given(**hf) == ours


def test_sentence_transformers_enums_are_read_by_value():
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    assert given(batch_sampler=BatchSamplers.NO_DUPLICATES) == {"sampler": "in_batch"}
    assert given(batch_sampler=BatchSamplers.GROUP_BY_LABEL) == {"sampler": "group_by_label"}
    assert given(multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL) == {
        "multi_dataset_sampling": "proportional"
    }
    with pytest.raises(ConfigError, match="sampler='in_batch'"):
        given(batch_sampler=BatchSamplers.BATCH_SAMPLER)


def test_every_alias_of_the_table_is_tested_and_names_a_real_option():
    tested = {k for hf, _ in ALIASES for k in hf}
    for name, entry in TRAINER_ARGS.items():
        if entry.option is None:
            assert name not in NAMES
            continue
        assert entry.option in NAMES, name
        assert name in tested or name == entry.option, f"alias {name!r} has no test"


REFUSED = {
    "warmup_steps": "warmup_ratio",
    "eval_strategy": "eval_every",
    "evaluation_strategy": "eval_every",
    "save_strategy": "checkpoint_every",
    "logging_strategy": "log_every",
    "per_device_eval_batch_size": "no option",
    "greater_is_better": "keep_best",
    "optim": "AdamW",
    "gradient_checkpointing": "gradcache_mini_batch",
    "push_to_hub": "upload the saved model folder",
    "run_name": "output_dir",
    "eval_on_start": "evaluates once before training",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_trainer_names_name_the_option_to_use(name):
    with pytest.raises(
        ConfigError, match=f"'{name}' \\(a transformers trainer argument\\) is not an option of fit"
    ) as e:
        given(**{name: 1})
    assert REFUSED[name] in str(e.value)


def test_every_refusal_of_the_table_is_tested():
    assert {n for n, e in TRAINER_ARGS.items() if e.option is None} == set(REFUSED)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"learning_rate": 1e-4, "lr": 1e-5}, "'learning_rate' and 'lr' both give fit's option 'lr'"),
        ({"fp16": True, "bf16": True}, "both give fit's option 'mixed_precision'"),
        ({"num_train_epochs": 0.5}, "anycl trains whole epochs .* max_steps"),
        ({"metric_for_best_model": "ndcg@10"}, "without load_best_model_at_end: give keep_best="),
        ({"lr_scheduler_type": "constant"}, "lr_schedule='constant' with warmup_ratio=0"),
        ({"lr_scheduler_type": "polynomial"}, "the values anycl has are 'linear', 'cosine'"),
        ({"fp16": "yes"}, "fp16 must be True or False"),
        ({"per_device_train_batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"learning_rat": 1e-5}, "did you mean 'learning_rate'"),
    ],
)
def test_bad_or_doubled_trainer_names_are_clear_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        FitConfig.build(None, kw).validate()


def test_a_config_file_takes_trainer_names():
    check_keys({"num_train_epochs": 1, "learning_rate": 1e-5})
    with pytest.raises(ConfigError, match="unknown key"):
        check_keys({"num_train_epoch": 1})


def test_the_docs_tables_are_the_code_tables():
    assert migration_table() in (DOCS / "text.md").read_text()
    assert loss_table() in (DOCS / "losses.md").read_text()


def test_fit_with_trainer_names_and_a_sentence_transformers_loss(tiny_text_encoder, text_pairs):
    model = anycl.fit(
        text_pairs,
        "text",
        loss="MultipleNegativesRankingLoss",
        loss_options={"scale": 25.0},
        encoder=copy.deepcopy(tiny_text_encoder),
        per_device_train_batch_size=4,
        learning_rate=1e-4,
        max_steps=1,
        disable_tqdm=True,
        adapter_options={"max_seq_length": 16},
    )
    cfg = model.info["config"]
    assert cfg["batch_size"] == 4 and cfg["lr"] == 1e-4
    assert cfg["loss"] == "infonce" and cfg["loss_options"]["temperature"] == pytest.approx(1 / 25)  # anycl's


def test_the_command_line_takes_trainer_names(tmp_path, capsys):
    from anycl import cli

    data = tmp_path / "pairs.csv"
    data.write_text("anchor,positive\na,b\nc,d\n")
    argv = ["fit", str(data), "--modality", "text", "-q"]
    assert cli.main([*argv, "--warmup-steps", "10"]) == 2
    assert "give warmup_ratio" in capsys.readouterr().err
    assert cli.main([*argv, "--learning-rate", "1e-4", "--lr", "1e-5"]) == 2
    assert "'learning_rate' and 'lr' both give fit's option 'lr'" in capsys.readouterr().err

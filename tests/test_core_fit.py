"""anycl.fit on text end to end: the README snippet, save/load, determinism, and bad input."""

import json
import os

import datasets
import pytest
import torch

import anycl
from anycl.errors import ConfigError, DataError

FAST = dict(batch_size=8, epochs=1, progress=False, adapter_options={"max_seq_length": 32})


def test_fit_encode_save_load_roundtrip(tmp_path, text_pairs, minilm_path):
    model = anycl.fit(text_pairs, modality="text", model=minilm_path, seed=1, **FAST)
    assert isinstance(model, anycl.ContrastiveModel)
    emb = model.encode(["a query", "another"])
    assert emb.shape == (2, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    model.save(tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "anycl_config.json" in files and "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]  # nothing pickled
    loaded = anycl.load(tmp_path / "out")
    assert torch.equal(loaded.encode(["a query", "another"]), emb)
    # fine-tuning changed the model
    base = anycl.api.build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    assert not torch.equal(base.encode(["a query"]), emb[:1])
    assert model.trainer.global_step == 3 and model.trainer.history[0]["loss"] > 0


def test_same_seed_gives_identical_weights(text_pairs, minilm_path):
    a = anycl.fit(text_pairs, modality="text", model=minilm_path, seed=7, **FAST)
    b = anycl.fit(text_pairs, modality="text", model=minilm_path, seed=7, **FAST)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_streaming_dataset_with_hard_negatives_eval_and_callbacks(tmp_path, minilm_path):
    rows = [
        {"anchor": f"topic {i} question", "positive": f"topic {i} answer", "negative": f"topic {i + 1} answer"}
        for i in range(16)
    ]
    stream = datasets.Dataset.from_list(rows).to_iterable_dataset()
    steps = []
    model = anycl.fit(
        stream,
        modality="text",
        model=minilm_path,
        max_steps=2,
        eval_dataset=rows[:8],
        callbacks=[lambda trainer, step, logs: steps.append((step, logs["loss"]))],
        output_dir=str(tmp_path / "run"),
        **FAST,
    )
    assert [s for s, _ in steps] == [1, 2]
    assert "ndcg@10" in model.trainer.eval_history[-1]
    assert (tmp_path / "run" / "model" / "anycl_config.json").exists()
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))  # TensorBoard curves
    assert torch.equal(anycl.load(tmp_path / "run").encode(["x"]), model.encode(["x"]))


def test_bad_options_and_data_give_clear_errors(text_pairs, minilm_path, tmp_path):
    with pytest.raises(ConfigError, match=r"no adapter for modality 'lidar'; registered modalities: .*text"):
        anycl.fit(text_pairs, modality="lidar")
    with pytest.raises(ConfigError, match=r"unknown loss 'nope'; registered losses: .*infonce"):
        anycl.fit(text_pairs, modality="text", loss="nope")
    with pytest.raises(ConfigError, match=r"unknown fit option\(s\) \['speediness'\]; valid options: .*lr"):
        anycl.fit(text_pairs, modality="text", speediness=1e-3)  # (learning_rate is read as lr: test_trainer_names.py)
    with pytest.raises(ConfigError, match="batch_size=1 leaves no in-batch negatives"):
        anycl.fit(text_pairs, modality="text", batch_size=1)
    with pytest.raises(ConfigError, match="modality is required"):
        anycl.fit(text_pairs)
    with pytest.raises(DataError, match="empty"):
        anycl.fit([], modality="text")
    with pytest.raises(DataError, match=r"row 1, column 'positive' is missing"):
        anycl.fit(
            [{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": None}],
            modality="text",
            model=minilm_path,
            **FAST,
        )
    with pytest.raises(DataError, match=r"column 'anchor' mixes item types"):
        anycl.fit(
            [{"anchor": "a", "positive": "b"}, {"anchor": 3, "positive": "d"}],
            modality="text",
            model=minilm_path,
            **FAST,
        )
    with pytest.raises(DataError, match="must be a string for modality 'text'"):
        anycl.fit(
            [{"anchor": 1, "positive": 2}, {"anchor": 3, "positive": 4}], modality="text", model=minilm_path, **FAST
        )
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="nothing was trained"):
        anycl.fit(text_pairs, modality="text", output_dir=str(tmp_path / "busy"))
    assert (tmp_path / "busy" / "keep.txt").read_text() == "precious"


def test_save_refuses_existing_and_failed_save_keeps_old_model(tmp_path, text_pairs, minilm_path, monkeypatch):
    model = anycl.fit(text_pairs[:8], modality="text", model=minilm_path, max_steps=1, **FAST)
    out = tmp_path / "m"
    model.save(out)
    before = anycl.load(out).encode(["probe"])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(out)
    tower = model.tower("anchor")

    def broken(encoder, directory):
        (open(os.path.join(directory, "partial.bin"), "wb")).write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tower.adapter, "save_encoder", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(out, overwrite=True)
    assert torch.equal(anycl.load(out).encode(["probe"]), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind


def test_load_rejects_what_is_not_an_anycl_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        anycl.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is not an anycl model"):
        anycl.load(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "anycl_config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ConfigError, match="is not an anycl model"):
        anycl.load(tmp_path / "other")


def test_public_surface():
    for name in ("fit", "load", "ContrastiveModel", "losses", "adapters", "samplers"):
        assert hasattr(anycl, name)
    for reg in (anycl.losses, anycl.adapters, anycl.samplers):
        assert callable(reg.get) and callable(reg.names) and callable(reg.register)
    assert "text" in anycl.adapters.names() and "in_batch" in anycl.samplers.names()


def test_third_party_adapter_registers_by_name(text_pairs):
    from anycl.adapters import Adapter

    @anycl.adapters.register("test_numbers")
    class Numbers(Adapter):
        modality = "test_numbers"
        fit_defaults = {"batch_size": 4, "lr": 1e-2, "head": None}

        def collate(self, items):
            return torch.tensor(items, dtype=torch.float32).view(-1, 1)

        def augment(self, item, generator):
            return item + float(torch.rand((), generator=generator)) * 0.01

        def default_encoder(self):
            enc = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
            enc.anycl_spec = {}
            enc.embedding_dim = 4
            return enc

    model = anycl.fit([float(i) for i in range(16)], modality="test_numbers", epochs=2, progress=False)
    assert model.encode([1.0, 2.0]).shape == (2, 4)


def test_gradient_accumulation_steps_the_optimiser_every_n_batches(text_pairs, minilm_path):
    model = anycl.fit(text_pairs, modality="text", model=minilm_path, gradient_accumulation_steps=3, **FAST)
    # 24 pairs / batch 8 = 3 batches → one optimiser step (accumulation adds no negatives: each batch
    # still contrasts its own 8 pairs)
    assert model.trainer.global_step == 1

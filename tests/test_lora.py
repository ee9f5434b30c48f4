"""LoRA through peft (anycl.model.lora): only adapter weights train, merged exports load in sentence-transformers,
unmerged adapters round-trip through save/load, bad options are errors."""

import pytest
import torch

import anycl
from anycl.errors import ConfigError

pytest.importorskip("peft")

LORA = {"r": 4, "alpha": 8, "target_modules": ["query", "value"]}


def _fit(pairs, minilm_path, tmp_path=None, **extra):
    opts = dict(
        model=minilm_path,
        batch_size=8,
        max_steps=3,
        lr=1e-3,
        progress=False,
        log_with=None,
        collapse_watch=False,
        adapter_options={"max_seq_length": 32},
    )
    opts.update(extra)
    return anycl.fit(pairs, modality="text", **opts)


def test_lora_trains_only_the_adapter_and_the_merged_export_loads_in_sentence_transformers(
    text_pairs, minilm_path, tmp_path
):
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(minilm_path, device="cpu")
    base_state = {k: v.clone() for k, v in base[0].auto_model.state_dict().items()}
    model = _fit(text_pairs, minilm_path, peft=LORA)
    tuned = model.towers["text"].encoder.st[0].auto_model.state_dict()
    assert not any("lora_" in k for k in tuned)  # merged: plain weights again
    assert set(tuned) == set(base_state)
    changed = {k for k in tuned if not torch.equal(tuned[k], base_state[k])}
    # the merge changes exactly the targeted projections' weights (LoRA adds B·A to W; biases untouched)
    assert changed and all(k.endswith(("query.weight", "value.weight")) for k in changed)
    assert len(changed) == 2 * 6  # 6 layers × (query, value)
    model.save(str(tmp_path / "m"))
    st = SentenceTransformer(str(tmp_path / "m" / "towers" / "text"), device="cpu")
    texts = [r["anchor"] for r in text_pairs[:6]]
    ours = model.encode(texts)
    theirs = torch.nn.functional.normalize(torch.as_tensor(st.encode(texts)), dim=-1)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(
        ours, torch.nn.functional.normalize(torch.as_tensor(base.encode(texts)), dim=-1), atol=1e-4
    )


def test_merged_weights_equal_base_plus_scaled_low_rank_update(text_pairs, minilm_path):
    """W_merged = W + (alpha / r) · B @ A, checked on the LoRA model before merging."""
    from anycl.model.lora import merge_lora, target_module

    model = _fit(text_pairs, minilm_path, peft={**LORA, "merge": False})
    layer = target_module(model.towers["text"]).encoder.layer[0].attention.self.query
    w, a, b = (
        layer.base_layer.weight.detach().clone(),
        layer.lora_A["default"].weight.detach(),
        layer.lora_B["default"].weight.detach(),
    )
    expected = w + (LORA["alpha"] / LORA["r"]) * b @ a
    before = model.encode(["a question about cats"])
    merge_lora(model)
    merged = target_module(model.towers["text"]).encoder.layer[0].attention.self.query.weight
    assert torch.allclose(merged, expected, atol=1e-6)
    assert torch.allclose(model.encode(["a question about cats"]), before, atol=1e-5)


def test_unmerged_adapter_round_trips_and_loads_in_peft_and_sentence_transformers(text_pairs, minilm_path, tmp_path):
    """``save`` of an unmerged adapter writes a PEFT adapter folder: anycl.load, sentence-transformers'
    ``load_adapter`` and ``peft.PeftModel`` on the saved base weights all give anycl's embeddings."""
    import json

    import peft
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    model = _fit(text_pairs, minilm_path, peft={**LORA, "merge": False})
    assert model.towers["text"].lora is not None
    texts = ["what do we know about chess?", "facts on bread"]
    before = model.encode(texts)
    model.save(str(tmp_path / "m"))
    tower = tmp_path / "m" / "towers" / "text"
    config = json.loads((tower / "lora" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["target_modules"]) == ["query", "value"]
    assert (tower / "lora" / "adapter_model.safetensors").exists()
    loaded = anycl.load(str(tmp_path / "m"))
    assert torch.allclose(loaded.encode(texts), before, atol=1e-6)
    # the base folder alone is the untouched base model; load_adapter adds the trained adapter
    base = SentenceTransformer(minilm_path, device="cpu")
    st = SentenceTransformer(str(tower), device="cpu")
    assert torch.allclose(torch.as_tensor(st.encode(texts)), torch.as_tensor(base.encode(texts)), atol=1e-6)
    st.load_adapter(str(tower / "lora"))
    adapted = F.normalize(torch.as_tensor(st.encode(texts)), dim=-1)
    assert torch.allclose(adapted, before, atol=1e-5)
    assert (adapted - F.normalize(torch.as_tensor(base.encode(texts)), dim=-1)).abs().max() > 1e-4  # it trained
    # plain peft + transformers, mean pooling as the folder's Pooling module says
    pm = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(str(tower)), str(tower / "lora")).eval()
    batch = AutoTokenizer.from_pretrained(str(tower))(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = pm(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    assert torch.allclose(F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1), before, atol=1e-5)
    # the cards say how
    assert f'load_adapter("{tmp_path.name}/m/towers/text/lora")' in (tower / "README.md").read_text()
    assert "load_adapter(" in (tmp_path / "m" / "README.md").read_text()
    # an export holds the adapter merged (the model keeps it apart): plain SentenceTransformer gives anycl's vectors
    exported = model.export_sentence_transformers(str(tmp_path / "st"))
    assert model.towers["text"].lora is not None and "load_adapter" not in (tmp_path / "st" / "README.md").read_text()
    plain = F.normalize(torch.as_tensor(SentenceTransformer(exported, device="cpu").encode(texts)), dim=-1)
    assert torch.allclose(plain, before, atol=1e-5)


def test_adapter_folders_of_the_earlier_format_still_load(tmp_path):
    """A custom tower's adapter is a PEFT folder too (PeftModel loads it onto the base encoder); folders
    saved before the PEFT format (``adapter.safetensors``, anycl's option names) load as before."""
    import json

    import peft
    import safetensors.torch

    import tests.toy_modality  # noqa: F401  registers "toyvec"
    from anycl.model.lora import adapter_state, target_module, without_lora

    model = _fit_toyvec(lr=1e-2)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    want = model.encode(x.tolist())
    model.save(str(tmp_path / "m"))
    d = tmp_path / "m" / "towers" / "toyvec" / "lora"
    assert json.loads((d / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert torch.allclose(anycl.load(str(tmp_path / "m")).encode(x.tolist()), want, atol=1e-6)
    base = anycl.load(str(tmp_path / "m"))
    plain = without_lora(base.towers["toyvec"].encoder)  # the saved base weights alone
    with torch.no_grad():
        by_peft = peft.PeftModel.from_pretrained(plain, str(d)).eval()(x)
        tuned = base.towers["toyvec"].encoder.eval()(x)
    assert torch.allclose(by_peft, tuned, atol=1e-6)

    for f in d.iterdir():
        f.unlink()
    safetensors.torch.save_file(adapter_state(target_module(model.towers["toyvec"])), str(d / "adapter.safetensors"))
    old = {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["net.0", "net.3"], "merge": False}
    (d / "adapter_config.json").write_text(json.dumps(old))
    assert torch.allclose(anycl.load(str(tmp_path / "m")).encode(x.tolist()), want, atol=1e-6)
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3", "target_modules": ["net.0"]}))
    with pytest.raises(ConfigError, match="LoRA adapters only"):
        anycl.load(str(tmp_path / "m"))


def _fit_toyvec(**extra):
    import tests.toy_modality  # noqa: F401  registers "toyvec"

    g = torch.Generator().manual_seed(0)
    items = [
        {"anchor": torch.randn(6, generator=g).tolist(), "positive": torch.randn(6, generator=g).tolist()}
        for _ in range(16)
    ]
    return anycl.fit(
        items,
        modality="toyvec",
        max_steps=2,
        progress=False,
        log_with=None,
        collapse_watch=False,
        peft={"r": 2, "target_modules": ["net.0", "net.3"], "merge": False},
        **extra,
    )


def test_lora_on_a_custom_encoder_tower():
    model = _fit_toyvec()
    names = [n for n, p in model.towers["toyvec"].encoder.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"r": 0}, "rank"),
        ({"rank": 4}, "unknown peft"),
        ({"alpha": -1}, "alpha"),
        ({"dropout": 1.5}, "dropout"),
        ({"target_modules": 3}, "target_modules"),
        ({"merge": "yes"}, "merge"),
        ("lora", "dict"),
    ],
)
def test_bad_peft_options_are_config_errors_before_loading(text_pairs, spec, match):
    with pytest.raises(ConfigError, match=match):
        anycl.fit(text_pairs, modality="text", peft=spec, model="/nonexistent/model", progress=False)


def test_target_modules_that_match_nothing_are_a_config_error(text_pairs, minilm_path):
    with pytest.raises(ConfigError, match="target_modules"):
        _fit(text_pairs, minilm_path, peft={"r": 2, "target_modules": ["no_such_layer"]})

"""Image backbones by name (adapters/image_pretrained.py, image_families.py, image_weights.py) and their export in
the library's own format (export/to_backbone.py).

No download: torchvision and timm models are built with ``pretrained=False`` or from a weights file placed in a
temporary torch hub / Hugging Face cache here (with known values, to show they are the ones used); the
transformers models are tiny random-init ViT, DINOv2 and CLIP checkpoints saved here. Each family trains one
step, saves, reloads (no network, no pickle) with the same embeddings, and its export, loaded by the library's
own loader, gives ``model.encode``'s features (the backbone's: the projection head is not in ``encode`` of a
one-modality model, nor in the export) within 1e-5; ONNX too.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import safetensors.torch
import torch
import transformers
from torch import nn

import anycl
from anycl.adapters.image import ImageAdapter
from anycl.adapters.image_pretrained import ImageBackbone, open_backbone
from anycl.errors import ConfigError
from anycl.export.to_onnx import features_for, onnx_session, run_onnx
from anycl.fitting.data import SIDES
from anycl.model.contrastive import build_model

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("one_thread")

SHA = "0123456789abcdef0123456789abcdef01234567"
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 4 * i, 44, 3), dtype=np.uint8) for i in range(n)]


def _tiny(cls, **extra):
    return cls(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24, **extra)


def make_hf(family: str, folder) -> str:
    """A tiny random-init ViT / DINOv2 / CLIP (the whole CLIP model: anycl takes its vision tower), saved as a Hub
    checkpoint is, with its preprocessor settings."""
    t = transformers
    torch.manual_seed(0)
    if family == "vit":
        model = t.ViTModel(_tiny(t.ViTConfig, image_size=32, patch_size=8))
        proc = {"size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    elif family == "dinov2":
        model = t.Dinov2Model(_tiny(t.Dinov2Config, image_size=32, patch_size=8))
        proc = {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True}
        proc.update(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    else:
        vision = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24)
        text = dict(vision, vocab_size=50, max_position_embeddings=16)
        config = t.CLIPConfig(
            text_config=text, vision_config=dict(vision, image_size=32, patch_size=8), projection_dim=8
        )
        model = t.CLIPModel(config)
        proc = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True}
        proc.update(image_mean=CLIP_MEAN, image_std=CLIP_STD)
    model.save_pretrained(str(folder))
    proc.update(do_resize=True, do_normalize=True, do_rescale=True, rescale_factor=1 / 255)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "ViTImageProcessor", **proc}))
    return str(folder)


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    made = {}

    def get(family):
        if family not in made:
            made[family] = make_hf(family, tmp_path_factory.mktemp(family))
        return made[family]

    return get


def _refused(what):
    def refuse(*a, **k):
        raise AssertionError(f"anycl.load used {what}")

    return refuse


def library_features(spec, export_path, x):
    """The features of ``x`` from the export, loaded by its library's own loader (the independent reference)."""
    family, name = spec["family"], spec["name"]
    if family == "torchvision":
        import torchvision

        net = torchvision.models.get_model(name)
        result = net.load_state_dict(torch.load(export_path, weights_only=True), strict=False)
        head = spec["removed_head"]
        assert sorted(result.missing_keys) == [f"{head}.bias", f"{head}.weight"] and not result.unexpected_keys
        parent, _, last = head.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, last, nn.Identity())
        return net.eval()(x)
    if family == "timm":
        return timm.create_model(name, num_classes=0, checkpoint_path=export_path).eval()(x)
    hf = transformers.AutoModel.from_pretrained(export_path).eval()
    out = hf(pixel_values=x)
    return out.pooler_output if spec["hf_family"] == "clip" else out.last_hidden_state[:, 0]


BACKBONES = [
    ("torchvision/resnet18", "torchvision", "fc.pth"),
    ("torchvision/mobilenet_v3_small", "torchvision", "mnv3.safetensors"),
    ("timm/test_resnet", "timm", "r.safetensors"),
    ("timm/test_vit", "timm", "v.pth"),
    ("vit", "transformers", "hf"),
    ("dinov2", "transformers", "hf"),
    ("clip", "transformers", "hf"),
]


@pytest.mark.parametrize("name, family, export_name", BACKBONES)
def test_train_save_load_export_and_onnx(name, family, export_name, hf_checkpoint, tmp_path, monkeypatch):
    model_name = hf_checkpoint(name) if family == "transformers" else name
    items = images()
    model = anycl.fit(
        items,
        modality="image",
        model=model_name,
        encoder_options={"pretrained": family == "transformers"},  # torchvision / timm: no weights here
        max_steps=1,
        batch_size=4,
        progress=False,
        seed=0,
    )
    assert model.trainer.args.lr == 1e-4  # a named backbone's fine-tuning default
    tower = model.tower("image")
    assert isinstance(tower.encoder, ImageBackbone)
    emb = model.encode(items, normalize=False)
    model.save(str(tmp_path / "m"))
    tower_dir = tmp_path / "m" / "towers" / "image"
    files = set(os.listdir(tower_dir))
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads((tmp_path / "m" / "anycl_config.json").read_text())["towers"]["image"]
    spec = config["encoder"]
    assert spec["kind"] == "backbone" and spec["family"] == family and spec["num_features"] == emb.shape[1]
    assert [config["adapter"][k] for k in ("mean", "std", "size")] == [spec["mean"], spec["std"], spec["size"]]
    with monkeypatch.context() as m:  # loading needs no network and unpickles nothing
        m.setattr(socket.socket, "connect", _refused("a network connection"))
        m.setattr(torch, "load", _refused("torch.load (pickle)"))
        again = anycl.load(str(tmp_path / "m"))
    assert torch.equal(again.encode(items, normalize=False), emb)  # bit for bit

    out = again.export(family, str(tmp_path / export_name))
    adapter = again.tower("image").adapter
    x = adapter.prepare(adapter.collate([adapter.eval_view(adapter.load(i)) for i in items]), train=False)
    with torch.no_grad():
        ref = library_features(spec, out, x)
    assert torch.allclose(ref, emb, atol=1e-5), (ref - emb).abs().max()

    again.export_onnx(str(tmp_path / "onnx"))
    got = run_onnx(onnx_session(str(tmp_path / "onnx")), features_for(again, items))
    assert np.allclose(got, again.encode(items).numpy(), atol=1e-5)


# ---- the backbone's own recipe -----------------------------------------------------------------------------
def test_each_backbone_brings_its_normalisation_size_and_eval_resize(hf_checkpoint):
    cases = {
        "torchvision/convnext_tiny": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 224, 236 / 224),
        "timm/test_vit": ([0.5] * 3, [0.5] * 3, 160, 1 / 0.95),
        hf_checkpoint("clip"): (CLIP_MEAN, CLIP_STD, 32, 1.0),
        hf_checkpoint("dinov2"): ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 32, 40 / 32),
    }
    for name, (mean, std, size, resize) in cases.items():
        tower = build_model({s: "image" for s in SIDES}, model=name, encoder_options={"pretrained": False})
        a = tower.tower("image").adapter
        assert np.allclose(a.mean, mean) and np.allclose(a.std, std), name
        assert a.size == size and a.aug.eval_resize == pytest.approx(resize), name
        assert a.eval_view(torch.zeros(3, 50, 70, dtype=torch.uint8)).shape == (3, size, size)


def test_options_the_user_sets_win_over_the_backbones():
    model = build_model(
        {s: "image" for s in SIDES},
        model="torchvision/resnet18",
        encoder_options={"pretrained": False},
        adapter_options={"size": 64, "mean": [0.5] * 3},
    )
    a = model.tower("image").adapter
    assert a.size == 64 and a.mean == [0.5] * 3 and a.std == [0.229, 0.224, 0.225]


def test_classifier_is_removed_and_the_embedding_is_the_pooled_features():
    import torchvision

    torch.manual_seed(0)
    enc = open_backbone("torchvision/resnet18", pretrained=False).eval()
    ref = torchvision.models.resnet18()
    ref.load_state_dict(enc.model.state_dict(), strict=False)
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    trunk = nn.Sequential(*list(ref.children())[:-1])  # everything before fc: the pooled 512 features
    assert torch.allclose(enc(x), trunk(x).flatten(1), atol=1e-6)
    assert enc.embedding_dim == 512 and enc.head == "fc"
    mnv3 = open_backbone("torchvision/mobilenet_v3_small", pretrained=False)
    assert mnv3.head == "classifier.3" and mnv3.embedding_dim == 1024
    assert (
        open_backbone("timm/test_resnet", pretrained=False).embedding_dim
        == timm.create_model("test_resnet").num_features
    )


# ---- pretrained weights from the local cache ----------------------------------------------------------------
def _known(state):
    g = torch.Generator().manual_seed(7)
    return {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v) for k, v in state.items()}


def test_torchvision_weights_are_read_from_the_torch_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = _known(torchvision.models.mobilenet_v3_small().state_dict())
    with pytest.raises(ConfigError, match=r"mobilenet_v3_small-047dcff4\.pth is missing, and downloads are off"):
        open_backbone("torchvision/mobilenet_v3_small")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")
    enc = open_backbone("torchvision/mobilenet_v3_small")
    got = enc.model.state_dict()
    assert set(state) - set(got) == {"classifier.3.weight", "classifier.3.bias"}  # the classifier, removed
    assert all(torch.equal(got[k], state[k]) for k in got)
    assert enc.pretrained and enc.spec()["pretrained"] is True


def _hub_file(cache, repo, files):
    snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / SHA
    snap.mkdir(parents=True)
    (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text(SHA)
    for name, write in files.items():
        write(snap / name)


def test_timm_weights_are_read_from_the_hugging_face_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"lacks model\.safetensors or pytorch_model\.bin of timm/test_resnet\.r160"):
        open_backbone("timm/test_resnet")
    state = _known(timm.create_model("test_resnet").state_dict())
    _hub_file(
        tmp_path,
        "timm/test_resnet.r160_in1k",
        {"model.safetensors": lambda p: safetensors.torch.save_file(state, str(p))},
    )
    enc = open_backbone("timm/test_resnet")
    got = enc.model.state_dict()
    assert set(state) - set(got) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(got[k], state[k]) for k in got)


def test_a_transformers_model_is_read_from_the_hugging_face_cache_by_id(tmp_path, monkeypatch, hf_checkpoint):
    from huggingface_hub import constants

    folder = hf_checkpoint("vit")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        ConfigError, match=r"cannot open the image model 'tiny/vit'.*no config\.json.*downloads are off"
    ):
        open_backbone("tiny/vit")
    copy = {f: (lambda p, f=f: p.write_bytes(open(os.path.join(folder, f), "rb").read())) for f in os.listdir(folder)}
    _hub_file(tmp_path, "tiny/vit", copy)
    enc = open_backbone("tiny/vit")
    want = transformers.ViTModel.from_pretrained(folder, add_pooling_layer=False).state_dict()  # the folder's
    got = enc.model.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in got)
    assert enc.recipe.mean == (0.5, 0.5, 0.5) and enc.recipe.size == 32


def test_weights_not_in_the_cache_are_downloaded_only_when_downloads_are_on(tmp_path, monkeypatch):
    import huggingface_hub
    import torchvision
    from huggingface_hub import constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    tv_state = _known(torchvision.models.mobilenet_v3_small().state_dict())
    timm_state = _known(timm.create_model("test_resnet").state_dict())
    asked = []

    def download_url(url, dst, progress=True):
        asked.append(url)
        torch.save(tv_state, dst)

    def download_hub(repo, filename, cache_dir=None):
        asked.append((repo, filename))
        path = tmp_path / "dl" / filename
        path.parent.mkdir(exist_ok=True)
        safetensors.torch.save_file(timm_state, str(path))
        return str(path)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download_hub)
    got = open_backbone("torchvision/mobilenet_v3_small").model.state_dict()
    assert all(torch.equal(got[k], tv_state[k]) for k in got)
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth").is_file()  # cached
    got = open_backbone("timm/test_resnet").model.state_dict()
    assert all(torch.equal(got[k], timm_state[k]) for k in got)
    assert asked == [
        "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        ("timm/test_resnet.r160_in1k", "model.safetensors"),
    ]
    open_backbone("torchvision/mobilenet_v3_small")  # now from the cache: no second download
    assert len(asked) == 2

    def no_network(url, dst, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(
        ConfigError, match=r"cannot download .* \(network is unreachable\); place the file at .*resnet18"
    ):
        open_backbone("torchvision/resnet18")


def test_a_folder_without_weights_is_refused_when_pretrained(hf_checkpoint, tmp_path):
    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(hf_checkpoint("vit"), "config.json")).read())
    with pytest.raises(ConfigError, match=r"pretrained weights of .* lacks model\.safetensors or pytorch_model\.bin"):
        open_backbone(str(folder))
    assert open_backbone(str(folder), pretrained=False).recipe.size == 32  # the config's image_size


# ---- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, options, message",
    [
        ("torchvision/resnt18", {}, r"torchvision has no classification model 'resnt18' \(did you mean resnet18"),
        ("timm/not_a_model", {"pretrained": False}, r"timm has no model 'not_a_model'"),
        ("resnet50", {}, r"names no image backbone: write 'torchvision/resnet50' or 'timm/resnet50'"),
        ("torchvision/resnet18", {"arch": "resnet18"}, r"encoder_options \['arch'\] shape anycl's own encoders"),
        ("torchvision/resnet18", {"pretrained": "yes"}, r"pretrained must be true or false"),
        (None, {"pretrained": True}, r"pretrained applies to a named backbone"),
    ],
)
def test_bad_names_and_options_are_config_errors(model, options, message):
    with pytest.raises(ConfigError, match=message):
        ImageAdapter().default_encoder(model=model, **options)


def test_an_unsupported_transformers_architecture_lists_the_supported_ones(tmp_path):
    transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(str(tmp_path))
    with pytest.raises(ConfigError, match=r"is a 'bert' model; anycl builds these transformers vision models: vit"):
        open_backbone(str(tmp_path), pretrained=False)


def test_grey_images_or_another_size_for_a_fixed_size_vit_are_refused(hf_checkpoint):
    sides = {s: "image" for s in SIDES}
    with pytest.raises(ConfigError, match=r"takes RGB images, but the image adapter's mode is 'L'"):
        build_model(
            sides, model="timm/test_resnet", encoder_options={"pretrained": False}, adapter_options={"mode": "L"}
        )
    with pytest.raises(ConfigError, match=r"takes 32 px images only .* but size=48"):
        build_model(sides, model=hf_checkpoint("vit"), adapter_options={"size": 48})


def test_an_export_for_another_library_or_tower_is_refused(tmp_path):
    sides = {s: "image" for s in SIDES}
    model = build_model(sides, model="timm/test_resnet", encoder_options={"pretrained": False})
    with pytest.raises(ConfigError, match=r"is the timm backbone 'test_resnet'; export it as 'timm'"):
        model.export("torchvision", str(tmp_path / "w.pth"))
    with pytest.raises(ConfigError, match=r"name it \*\.safetensors or \*\.pth"):
        model.export("timm", str(tmp_path / "w.bin"))
    model.export("timm", str(tmp_path / "w.pth"))
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        model.export("timm", str(tmp_path / "w.pth"))
    model.export("timm", str(tmp_path / "w.pth"), overwrite=True)
    own = build_model(sides, adapter_options={"preset": "small"})
    with pytest.raises(ConfigError, match=r"not a named backbone"):
        own.export("torchvision", str(tmp_path / "o.pth"))


def test_cli_fit_with_a_named_backbone(tmp_path):
    from PIL import Image

    from anycl import cli

    data = tmp_path / "photos"
    data.mkdir()
    for i, img in enumerate(images()):
        Image.fromarray(img).save(data / f"{i}.png")
    out = tmp_path / "out"
    argv = ["fit", str(data), "--modality", "image", "--model", "timm/test_resnet", "--max-steps", "1"]
    argv += ["--batch-size", "4", "--encoder-options", '{"pretrained": false}', "--output-dir", str(out), "-q"]
    assert cli.main(argv) == 0
    config = json.loads((out / "model" / "anycl_config.json").read_text())["towers"]["image"]
    assert config["encoder"]["family"] == "timm" and config["encoder"]["name"] == "test_resnet"
    assert config["encoder"]["pretrained"] is False and config["adapter"]["size"] == 160

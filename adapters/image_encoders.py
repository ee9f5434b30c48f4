"""Image encoders: torchvision ResNets (random init, no downloads) and wrappers for other vision models.

:func:`resnet` builds ResNet-18/34/50 (or a shallower ``resnet10``) with the classifier removed, an
optional small-image stem (3×3 stride-1 first convolution, no max-pool: the CIFAR variant of SimCLR,
so a 32 px image is not reduced to 8 px before the first block) and an optional ``width`` (channels
of the first stage; 64 is torchvision's, 16 makes a 16× cheaper network for CPU-sized experiments).
The module carries ``embedding_dim`` and ``anycl_spec`` so a saved model rebuilds it.

:func:`wrap_encoder` turns a torchvision classifier, a timm-style model (``forward_features`` /
``forward_head``) or a Hugging Face vision model (``pixel_values`` in, ``pooler_output`` out) into a
module mapping (B, C, H, W) → (B, D). Plain modules already returning (B, D) pass through.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

from anycl.errors import ConfigError

ARCHS = {
    "resnet10": ("basic", [1, 1, 1, 1]),
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
}


def resnet(arch: str = "resnet18", small_stem: bool = True, width: int = 64, in_channels: int = 3) -> nn.Module:
    """A randomly initialised torchvision ResNet without its classifier: (B, C, H, W) → (B, D).

    D = 8 × width for the basic-block ResNets (512 at width 64) and 32 × width for ResNet-50 (2048).
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # lazy: torchvision

    if arch not in ARCHS:
        raise ConfigError(
            f"unknown image encoder arch {arch!r}; choose one of {sorted(ARCHS) + ['cnn']} or pass encoder="
        )
    if int(width) < 1:
        raise ConfigError(f"width must be >= 1, got {width}")
    kind, layers = ARCHS[arch]
    block = BasicBlock if kind == "basic" else Bottleneck
    width = int(width)
    net = ResNet(block, layers)
    if width != 64 or in_channels != 3:
        # rebuild the stages at this width with torchvision's own layer builder
        net.inplanes = width
        net.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(block, width, layers[0])
        net.layer2 = net._make_layer(block, 2 * width, layers[1], stride=2)
        net.layer3 = net._make_layer(block, 4 * width, layers[2], stride=2)
        net.layer4 = net._make_layer(block, 8 * width, layers[3], stride=2)
    if small_stem:
        net.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    dim = 8 * width * block.expansion
    net.fc = nn.Identity()
    for m in net.modules():  # torchvision's initialisation, re-applied to the rebuilt layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    net.embedding_dim = dim
    net.anycl_spec = {"arch": arch, "small_stem": bool(small_stem), "width": width, "in_channels": int(in_channels)}
    return net


class VisionEncoder(nn.Module):
    """Adapts a vision model to (B, C, H, W) → (B, D).

    ``kind``: ``"hf"`` (Hugging Face: ``model(pixel_values=x)``, pooled output or the first token),
    ``"timm"`` (``forward_head(forward_features(x), pre_logits=True)``) or ``"plain"`` (``model(x)``,
    flattened to (B, D)).
    """

    def __init__(self, model: nn.Module, kind: str, embedding_dim: Optional[int] = None):
        super().__init__()
        self.model = model
        self.kind = kind
        if embedding_dim is not None:
            self.embedding_dim = int(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "hf":
            out = self.model(pixel_values=x)
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                pooled = getattr(out, "image_embeds", None)
            if pooled is None:
                pooled = (
                    out.last_hidden_state[:, 0]
                    if out.last_hidden_state.dim() == 3
                    else out.last_hidden_state.mean((2, 3))
                )
            return pooled.flatten(1)
        if self.kind == "timm":
            timm_model: Any = self.model  # forward_features/forward_head: timm's API, not nn.Module's
            return timm_model.forward_head(timm_model.forward_features(x), pre_logits=True).flatten(1)
        return self.model(x).flatten(1)


_CLASSIFIER_ATTRS = ("fc", "classifier", "heads", "head")


def _strip_classifier(model: nn.Module) -> Optional[int]:
    """Replace a torchvision classifier (``fc``/``classifier``/``heads``) by Identity; return its input width."""
    for attr in _CLASSIFIER_ATTRS:
        sub = getattr(model, attr, None)
        if isinstance(sub, nn.Linear):
            setattr(model, attr, nn.Identity())
            return sub.in_features
        if isinstance(sub, nn.Sequential):
            linears = [m for m in sub.modules() if isinstance(m, nn.Linear)]
            if linears and all(isinstance(m, (nn.Linear, nn.Dropout, nn.Identity)) for m in sub):
                setattr(model, attr, nn.Identity())
                return linears[0].in_features
    return None


def wrap_encoder(model: nn.Module, strip_classifier: bool = True) -> nn.Module:
    """Make ``model`` an image encoder for anycl (see the module docstring). Modifies a torchvision
    classifier in place (its final layer becomes Identity) when ``strip_classifier``."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"an image encoder must be an nn.Module, got {type(model).__name__}")
    if getattr(model, "anycl_spec", None) is not None:
        return model
    fwd = getattr(model, "forward", None)
    params = inspect.signature(fwd).parameters if fwd is not None else {}
    if hasattr(model, "config") and "pixel_values" in params:
        cfg = model.config
        dim = getattr(cfg, "hidden_size", None) or getattr(cfg, "projection_dim", None)
        sizes = getattr(cfg, "hidden_sizes", None)
        if sizes:
            dim = sizes[-1]
        return VisionEncoder(model, "hf", dim)
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        return VisionEncoder(model, "timm", getattr(model, "num_features", None))
    dim = getattr(model, "embedding_dim", None)
    if strip_classifier and dim is None:
        dim = _strip_classifier(model)
        if dim is not None:
            return VisionEncoder(model, "plain", dim)
    return model

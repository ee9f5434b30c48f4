"""A wide, shallow CNN for small images (28–64 px) that keeps a coarse spatial layout in its output.

At a CPU budget a deep ResNet ending in one global average pool trains slowly and throws away *where*
things are, which is much of what tells small, centred images (Fashion-MNIST, digits) apart; raw pixels
keep it. :func:`small_cnn` is three stages at the input resolution, 1/2 and 1/4 of it:

- conv 3×3 (``in_channels`` → ``width``) BN ReLU, conv 3×3 (``width`` → ``width``) BN ReLU, max-pool 2;
- conv 3×3 (``width`` → 2·``width``) BN ReLU, max-pool 2;
- conv 3×3 (2·``width`` → 4·``width``) BN ReLU;

then an average pool to a ``grid`` × ``grid`` layout of cells, flattened: D = 4·``width``·``grid``²
(2048 at width 32 and grid 4, the defaults; on 28 px images the last stage is 7 × 7, so a cell averages
about 2 × 2 of it). ``grid=1`` is the usual global average pool. Each ReLU before a max-pool runs after it, and
the cell average is one matrix product (the same numbers, less time: :mod:`.conv_layout`). The module carries ``embedding_dim``
and ``anycl_spec`` (``{"arch": "cnn", "width", "grid", "in_channels"}``) so a saved model rebuilds it.
"""

from __future__ import annotations

from torch import nn

from anycl.errors import ConfigError

from .conv_layout import CellPool, channels_last_after


def _conv(c_in: int, c_out: int) -> list:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _conv_pool(c_in: int, c_out: int) -> list:
    """conv BN ReLU max-pool, computed as conv BN max-pool ReLU (.conv_layout: the same numbers and gradients on a
    quarter of the elements); the modules without parameters swap places, so the state-dict keys are unchanged."""
    conv, bn, relu = _conv(c_in, c_out)
    return [conv, bn, nn.MaxPool2d(2), relu]


def small_cnn(width: int = 32, grid: int = 4, in_channels: int = 3) -> nn.Module:
    """A randomly initialised wide shallow CNN: (B, C, H, W) → (B, 4·width·grid²); see the module docstring."""
    for name, value in (("width", width), ("grid", grid), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"the 'cnn' image encoder's {name} must be an integer >= 1, got {value!r}")
    w = width
    net = nn.Sequential(
        *_conv(in_channels, w),
        *_conv_pool(w, w),
        *_conv_pool(w, 2 * w),
        *_conv(2 * w, 4 * w),
        CellPool(grid),  # nn.AdaptiveAvgPool2d(grid)'s cells, faster backward (.conv_layout)
        nn.Flatten(1),
    )
    for m in net.modules():  # the same initialisation as the ResNets (torchvision's)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    channels_last_after(net[0])  # the layers after the first convolution compute in NHWC (.conv_layout)
    net.embedding_dim = 4 * w * grid * grid  # type: ignore[assignment]  # read by anycl (output width)
    net.anycl_spec = {"arch": "cnn", "width": w, "grid": grid, "in_channels": in_channels}  # type: ignore[assignment]
    return net

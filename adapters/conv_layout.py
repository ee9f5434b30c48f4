"""anycl's own convolutional encoders compute in the channels-last memory layout (NHWC).

On CPUs (oneDNN) and GPUs (cuDNN) a convolution, batch norm and pooling over a channels-last tensor run
faster than over the default NCHW layout, forward and backward: 1.4-1.7× for the default image and audio
encoders on a CPU with bf16 autocast. The layout is a memory order only: every op gives the same numbers up to
floating-point rounding (its kernels add in another order), shapes and parameters are unchanged, and the
weights stay in the default layout (what is saved and exported is as before).

A convolution picks the layout of its input, so the layout is set at the encoder's first convolution
(:func:`channels_last_after`, forward hooks), from where every later layer keeps it: on its input where that has
several channels (an RGB image: a copy of 3 channels), else on its output (a tensor with one channel, a grey
image or a log-mel spectrogram, has no distinct channels-last order). Ops that read the memory order
(``view``) are not used after it in these encoders (``flatten`` / ``reshape`` read the logical order).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import nn


def _to_channels_last(module: nn.Module, inputs: Any, output: Any) -> Any:
    if torch.is_tensor(output) and output.dim() == 4:
        return output.contiguous(memory_format=torch.channels_last)
    return output


def _input_channels_last(module: nn.Module, args: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
    x = args[0] if args else None
    if torch.is_tensor(x) and x.dim() == 4 and x.shape[1] > 1:  # one channel: no distinct channels-last order
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def channels_last_after(layer: nn.Module) -> nn.Module:
    """Make ``layer`` (a convolution) compute in channels-last and give a channels-last 4-D output: its input
    made channels-last where it has several channels, else its output (forward hooks; no parameter or
    state-dict change; a tensor already channels-last is not copied)."""
    layer.register_forward_pre_hook(_input_channels_last)
    layer.register_forward_hook(_to_channels_last)
    return layer

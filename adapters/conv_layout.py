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

Two more reorderings of the same arithmetic, for the same reason (measured on one CPU thread under bf16 autocast):

- **ReLU after max-pool.** conv → BN → ReLU → max-pool is computed as conv → BN → max-pool → ReLU. The maximum and
  the ReLU commute (``max(relu(a), relu(b)) == relu(max(a, b))``), so the output is the same to the bit, and so are
  the gradients (the pool sends the gradient to the same element, which the ReLU passes or zeroes alike); the ReLU
  and its backward then touch a quarter of the elements. The modules without parameters swap places, so the
  state-dict keys do not change. The audio encoder's first block, forward and backward: 135 → 107 ms.
- **Cell pooling as one matrix product** (:class:`CellPool`): ``AdaptiveAvgPool2d(g)`` averages each of g × g
  cells; over a channels-last tensor that is a (g², H·W) averaging matrix times each item's (H·W, C) features,
  summed in fp32 and rounded to the input's type. torch's adaptive pooling backward has no fast channels-last path:
  the small image CNN's 7×7 → 4×4 pool, forward and backward, 36 → 10 ms for 512 images.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

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


class CellPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(grid)`` with the same cells (cell i spans ``floor(i·H/g)`` to ``ceil((i+1)·H/g)``, the
    same along W), computed as one matrix product (the module docstring); no parameters. (N, C, H, W) → (N, C, g, g),
    in the input's dtype."""

    def __init__(self, grid: int):
        super().__init__()
        self.grid = grid
        self._weights: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}

    @staticmethod
    def _cells(n: int, g: int) -> torch.Tensor:
        """(g, n): row i averages positions floor(i·n/g) to ceil((i+1)·n/g), built from Python numbers (a constant
        when an ONNX export traces it; torch.kron has no ONNX op)."""
        spans = [((i * n) // g, -((-(i + 1) * n) // g)) for i in range(g)]
        return torch.tensor([[1.0 / (b - a) if a <= j < b else 0.0 for j in range(n)] for a, b in spans])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        key = (int(h), int(w), x.device)
        if key not in self._weights:  # the (g², H·W) averaging matrix for this size: cell (i, j) = row_i ⊗ col_j
            rows, cols = self._cells(key[0], self.grid), self._cells(key[1], self.grid)
            weights = rows[:, None, :, None] * cols[None, :, None, :]  # (g, g, H, W)
            self._weights[key] = weights.reshape(self.grid * self.grid, key[0] * key[1]).to(x.device)
        with torch.autocast(x.device.type, enabled=False):  # fp32 sums, as the pooling kernels accumulate
            cells = torch.matmul(self._weights[key], x.float().permute(0, 2, 3, 1).reshape(n, h * w, c))
        return cells.to(x.dtype).permute(0, 2, 1).reshape(n, c, self.grid, self.grid)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


def channels_last_after(layer: nn.Module) -> nn.Module:
    """Make ``layer`` (a convolution) compute in channels-last and give a channels-last 4-D output: its input
    made channels-last where it has several channels, else its output (forward hooks; no parameter or
    state-dict change; a tensor already channels-last is not copied)."""
    layer.register_forward_pre_hook(_input_channels_last)
    layer.register_forward_hook(_to_channels_last)
    return layer

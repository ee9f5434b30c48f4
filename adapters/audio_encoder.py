"""The default audio encoder: a compact CNN over log-mel spectrograms.

Input: (N, 1, n_mels, T) log-mels (or (N, n_mels, T)); with sliding-window evaluation
(N, K, 1, n_mels, T), whose K window embeddings are averaged. Output: (N, embedding_dim).

Layout (BYOL-A's encoder, smaller): per-mel-bin BatchNorm of the input (learns the log-mel
scale, so no dataset statistics are needed), ``len(channels)`` blocks of 3×3 conv → BatchNorm → ReLU
→ 2×2 max-pool (computed as max-pool then ReLU: the same numbers and gradients, :mod:`.conv_layout`), then each
remaining time frame's (channels × mel) features → Linear → ReLU, and
temporal pooling mean + max (summed) → ``embedding_dim`` (or ``pooling="mean+std"``: the frames' mean and standard
deviation side by side, x-vector statistics pooling, each half of ``embedding_dim``). About 0.37 M parameters and 75 M
multiply-adds for one second at the default 64 mels: trains on a CPU in minutes.

``skip_silence=True`` leaves out of the temporal pooling the output frames that saw only digital silence (input frames
at the log-mel floor, ``log(LOG_EPS)``: the zeros that pad a clip shorter than the window), so a 0.3 s clip is not
averaged with 0.7 s of padding; a window that is silent throughout is pooled whole. The mask is computed from the
input, so an exported graph applies it too.

``readout="layers"`` gives, beside that embedding, every conv block's channels pooled over mel bins and frames (their
mean and their maximum): each block's part L2-normalised, the blocks together normalised again, and the embedding
normalised, side by side (``embedding_dim + 2 × sum(channels)`` wide, 128 + 352 = 480 by default; the two halves of
equal norm). The projection head and the loss see that whole vector, so training shapes every block's pooled
features too. It adds no parameters: the shipped starting weights fit it. Issue 29's round 14 measured it against the
default on the protocol's four sets (3 seeds): linear probes higher on every set (+0.019 to +0.092 on the dev splits,
+0.010 to +0.050 on the test splits, read once), kNN within noise on dev and −0.014 to +0.051 on test; but the same
readout lifts the random-init encoder more (``benchmarks/results/audio_protocol.md``): opt in, not the default.

``freeze=N`` keeps the input's batch norm and the first N conv blocks fixed while the rest trains: their weights take
no gradient and their batch norms stay in evaluation mode (the running statistics the start brought), so fine-tuning
from the shipped weights keeps their low-level features and skips those blocks' backward pass.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from anycl.errors import ConfigError

from .audio_mel import LOG_EPS
from .conv_layout import channels_last_after
from .frozen_parts import FrozenParts

# each block halves the mel bins and the frames: past this many, a spectrogram is one cell
MAX_BLOCKS = 16
POOLINGS = ("mean+max", "mean+std")
READOUTS = ("embedding", "layers")
STD_FLOOR = 1e-5
# an input frame is silent when no mel bin rises above the log-mel floor by this much (natural log: a power under
# about 1e-9, where the floor's LOG_EPS is 1e-6): the frames of a clip's zero padding, and digital silence
SILENCE = math.log(LOG_EPS) + 1e-3


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"the audio encoder's {name} must be an integer >= 1, got {value!r}")
    return value


class AudioCNN(FrozenParts):
    """Compact log-mel CNN with mean+max temporal pooling; takes (N, K, 1, F, T) evaluation windows itself.

    Args:
        n_mels: mel bins of the input (must match the adapter's ``n_mels``).
        channels: output channels of the conv blocks (each block halves mel bins and frames).
        embedding_dim: output width.
        dropout: dropout before the frame-wise linear layer (0 = off).
        pooling: over time, ``"mean+max"`` (default: the frames' mean plus their maximum) or ``"mean+std"``
            (their mean and standard deviation concatenated; the frame-wise layer is ``embedding_dim // 2`` wide,
            so ``embedding_dim`` must be even).
        skip_silence: pool over time only the output frames that saw some sound (see the module docstring);
            False (default) pools every frame. Round 5 of issue 29's protocol measured it: better on sound roles
            and speaker identity, worse on words across voices, whose random-init floor it raises
            (``benchmarks/results/audio_protocol.md``); not the default.
        readout: ``"embedding"`` (default): the pooled frame-wise features above, ``embedding_dim`` wide;
            ``"layers"``: that embedding beside every conv block's pooled channels (see the module docstring), so
            the output is ``embedding_dim + 2 × sum(channels)`` wide (the ``embedding_dim`` attribute says so).
        freeze: how many conv blocks, from the input, to keep fixed (with the input's batch norm) while the rest
            trains, 0 (default) to ``len(channels)``; see the module docstring.
    """

    accepts_windows = True  # forward averages a window axis itself (the tower need not fold it)

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (16, 32, 64, 64),
        embedding_dim: int = 128,
        dropout: float = 0.0,
        pooling: str = "mean+max",
        skip_silence: bool = False,
        readout: str = "embedding",
        freeze: int = 0,
    ):
        super().__init__()
        if (
            isinstance(channels, (str, bytes))
            or not isinstance(channels, Sequence)
            or not 1 <= len(channels) <= MAX_BLOCKS
        ):
            raise ConfigError(
                f"the audio encoder's channels must be a list of 1 to {MAX_BLOCKS} widths, got {channels!r}"
            )
        channels = [_positive("channels", c) for c in channels]
        self.n_mels = _positive("n_mels", n_mels)
        self.embedding_dim = _positive("embedding_dim", embedding_dim)
        if pooling not in POOLINGS:
            raise ConfigError(f"the audio encoder's pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        if pooling == "mean+std" and self.embedding_dim % 2:
            raise ConfigError(
                f"the audio encoder's pooling 'mean+std' concatenates two halves: embedding_dim must be even, "
                f"got {self.embedding_dim}"
            )
        if not isinstance(skip_silence, bool):
            raise ConfigError(f"the audio encoder's skip_silence must be true or false, got {skip_silence!r}")
        if readout not in READOUTS:
            raise ConfigError(f"the audio encoder's readout must be one of {list(READOUTS)}, got {readout!r}")
        if readout == "layers" and skip_silence:
            raise ConfigError(
                "the audio encoder's readout 'layers' pools every block over all its frames; it does not combine "
                "with skip_silence=True (choose one)"
            )
        if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze <= len(channels):
            raise ConfigError(
                f"the audio encoder's freeze must be a number of conv blocks from 0 to {len(channels)} (its "
                f"channels), got {freeze!r}; fit(freeze='audio') keeps the whole encoder fixed"
            )
        self.pooling, self.skip_silence, self.blocks = pooling, skip_silence, len(channels)
        self.readout = readout
        self.anycl_spec = {
            "n_mels": self.n_mels,
            "channels": [int(c) for c in channels],
            "embedding_dim": self.embedding_dim,
            "dropout": float(dropout),
        }
        if pooling != "mean+max":  # saved only when not the default: older folders load unchanged
            self.anycl_spec["pooling"] = pooling
        if skip_silence:  # likewise: a folder without it pools every frame, as it did when saved
            self.anycl_spec["skip_silence"] = True
        if readout != "embedding":  # likewise: a folder without it gives the embedding alone
            self.anycl_spec["readout"] = readout
        if freeze:  # likewise: a folder without it trains every block
            self.anycl_spec["freeze"] = freeze
        self.input_norm = nn.BatchNorm2d(self.n_mels)
        blocks, c_in, f = [], 1, self.n_mels
        for c in channels:
            blocks += [
                nn.Conv2d(c_in, int(c), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(c)),
                nn.MaxPool2d(2, ceil_mode=True),  # before the ReLU: the same numbers (.conv_layout)
                nn.ReLU(inplace=True),
            ]
            c_in, f = int(c), (f + 1) // 2
        self.features = nn.Sequential(*blocks)
        channels_last_after(self.features[0])  # the layers after the first convolution compute in NHWC
        width = self.embedding_dim // 2 if pooling == "mean+std" else self.embedding_dim
        self.frame = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in * f, width), nn.ReLU(inplace=True))
        if readout == "layers":  # the output width: the heads and exports are sized from this attribute
            self.embedding_dim += 2 * sum(channels)
        self.frozen_blocks = freeze
        if freeze:  # the input's batch norm and the first `freeze` blocks (4 layers each)
            self.freeze_parts([self.input_norm, *self.features[: 4 * freeze]])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise ValueError(f"AudioCNN expects (N, 1, {self.n_mels}, T) log-mels, got {tuple(x.shape)}")
        weights = self.sound_frames(x) if self.skip_silence else None
        x = self.input_norm(x.transpose(1, 2)).transpose(1, 2)  # normalise each mel bin
        if self.readout == "layers":
            x, blocks = self._blocks(x)
            return torch.cat([nn.functional.normalize(self._pool(x, weights), dim=1), blocks], dim=1)
        return self._pool(self.features(x), weights)

    def _blocks(self, x: torch.Tensor):
        """The conv blocks' output (N, C, F', T') and, beside it, each block's channels pooled over mel bins and
        frames (mean and maximum), each block L2-normalised, all of them normalised together: (N, 2 × sum(channels))."""
        parts = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):  # a block's end
                parts.append(nn.functional.normalize(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1), dim=1))
        return x, nn.functional.normalize(torch.cat(parts, dim=1), dim=1)

    def _pool(self, x: torch.Tensor, weights) -> torch.Tensor:
        """The embedding of the conv blocks' output (N, C, F', T'): frame-wise linear layer, then temporal pooling."""
        x = x.flatten(1, 2).transpose(1, 2)  # (N, T', C·F')
        x = self.frame(x)
        if self.pooling == "mean+std":
            var, mean = self._var_mean(x, weights)  # the floor keeps the gradient finite when the frames are equal
            return torch.cat([mean, (var + STD_FLOOR).sqrt()], dim=1)
        if weights is None:  # every frame
            return x.mean(dim=1) + x.amax(dim=1)
        w = weights.to(x.dtype)  # (N, T', 1): 1 for a frame that saw sound, else 0
        # the frames are >= 0 (ReLU): a left-out frame's 0 is never above the maximum of the kept ones
        return (x * w).sum(dim=1) / w.sum(dim=1) + (x * w).amax(dim=1)

    @staticmethod
    def _var_mean(x: torch.Tensor, weights):
        """The frames' variance and mean over time: every frame, or those whose ``weights`` (N, T', 1) are 1."""
        if weights is None:
            return torch.var_mean(x, dim=1, unbiased=False)
        w = weights.to(x.dtype)
        mean = (x * w).sum(dim=1) / w.sum(dim=1)
        return (((x - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / w.sum(dim=1), mean

    def sound_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T', 1) float: 1 for each output frame whose input frames held sound (not all at the log-mel floor),
        0 for the others; every frame 1 for a window that is silent throughout."""
        sound = (x.amax(dim=2) > SILENCE).float()  # (N, 1, T): an input frame with a bin above the floor
        for _ in range(self.blocks):  # the blocks' time pooling: an output frame sees its inputs' frames
            sound = nn.functional.max_pool1d(sound, 2, ceil_mode=True)
        sound = sound.transpose(1, 2)  # (N, T', 1)
        silent = sound.amax(dim=1, keepdim=True) == 0  # nothing but silence: pool every frame
        return torch.where(silent, torch.ones_like(sound), sound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # (N, K, 1, F, T): K evaluation windows per clip, averaged
            n, k = x.shape[:2]
            return self.embed(x.flatten(0, 1)).view(n, k, -1).mean(dim=1)
        return self.embed(x)

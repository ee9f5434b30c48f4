"""Long audio files read window by window: never decoded whole.

:meth:`AudioAdapter.load <anycl.adapters.audio.AudioAdapter.load>` returns a :class:`LongClip` (the file's
header, no samples) for a file longer than the adapter's ``stream_seconds``; the training, local and
evaluation views then read only the frames of their window (soundfile seeks to it), mix them down and
resample them. A window equals the same window cut from the whole file decoded and resampled at once: the
span read starts on a boundary of the resampler's period (``orig / gcd`` source frames, ``new / gcd`` output
samples) and has a margin of whole periods wider than the sinc kernel on each side, so every output sample
of the window sees exactly the source samples it would see in the whole file.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

from anycl.errors import DataError

from .audio_io import check_samples, mixdown, read_file, resample, resampler


class LongClip:
    """A long audio file (a path or encoded bytes) whose windows are read on demand.

    Attributes:
        name: the file's name in error messages. frames, rate, channels: from its header.
        target: the sample rate windows are resampled to. length: the clip's length at ``target`` Hz
            (what a whole decode would give: ``ceil(frames * target / rate)``).
    """

    def __init__(
        self, source: Union[str, bytes], name: str, frames: int, rate: int, channels: int, target: int, channel
    ):
        self.source, self.name = source, name
        self.frames, self.rate, self.channels, self.target = int(frames), int(rate), int(channels), int(target)
        self.channel = channel
        self.length = -(-self.frames * self.target // self.rate)

    @property
    def shape(self):  # the shape of the (never built) whole waveform, as a 1-D tensor would give it
        return torch.Size([self.length])

    def __repr__(self) -> str:
        return f"LongClip({self.name}, {self.frames / self.rate:.1f} s at {self.rate} Hz, {self.channels} ch)"

    def _read(self, start: int, stop: int) -> torch.Tensor:
        """Source frames [start, stop) → checked mono float32 samples."""
        data, _ = read_file(self.source, self.name, start=start, frames=stop - start)
        wave = np.ascontiguousarray(data.T)
        if wave.shape[-1] == 0:
            raise DataError(f"{self.name}: no samples at frame {start} although its header says {self.frames}")
        check_samples(wave, self.name)
        return torch.from_numpy(np.ascontiguousarray(mixdown(wave, self.channel, self.name)))

    def window(self, start: int, length: int) -> torch.Tensor:
        """Samples [start, start + length) of the clip at ``target`` Hz (zeros past its end)."""
        if self.rate == self.target:
            stop = min(start + length, self.frames)
            out = self._read(start, stop)
        else:
            g = math.gcd(self.rate, self.target)
            per_src, per_out = self.rate // g, self.target // g  # one period: source frames → output samples
            margin = -(-(resampler(self.rate, self.target).width + per_src) // per_src) + 1  # periods
            first = max(start // per_out - margin, 0)
            last = min(-(-(start + length) // per_out) + margin, -(-self.frames // per_src))
            src = self._read(first * per_src, min(last * per_src, self.frames))
            out = resample(src, self.rate, self.target)[start - first * per_out :][:length]
        if out.shape[-1] < length:
            out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
        return out.contiguous()


def span(wave: Union[torch.Tensor, LongClip], start: int, length: int) -> torch.Tensor:
    """Samples [start, start + length) of a loaded clip: a slice of a tensor, a read of a long file."""
    if isinstance(wave, LongClip):
        return wave.window(start, length)
    return wave[start : start + length]

"""Long audio files read window by window: never decoded whole.

:meth:`AudioAdapter.load <anycl.adapters.audio.AudioAdapter.load>` returns a :class:`LongClip` (the file's
header, no samples) for a file longer than the adapter's ``stream_seconds``; the training, local and
evaluation views then read only the frames of their window (soundfile seeks to it), mix them down and
resample them. A window equals the same window cut from the whole file decoded and resampled at once: the
span read starts on a boundary of the resampler's period (``orig / gcd`` source frames, ``new / gcd`` output
samples, or the nearby ratio :func:`~.audio_io.resample_periods` gives for rates whose exact kernel is too large)
and has a margin of whole periods wider than the sinc kernel on each side, so every output sample
of the window sees exactly the source samples it would see in the whole file.
"""

from __future__ import annotations

from typing import Union

import torch

from anycl.errors import DataError

from .audio_io import read_mono, resample, resample_periods, resampler, same_rate


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
        self.length = self.resampled_length(self.frames, self.rate, self.target)

    @staticmethod
    def resampled_length(frames: int, rate: int, target: int) -> int:
        """Samples at ``target`` Hz of ``frames`` at ``rate`` Hz, as a whole decode resamples them."""
        src, out = resample_periods(rate, target) if rate != target else (1, 1)
        return -(-int(frames) * out // src)

    @property
    def shape(self):  # the shape of the (never built) whole waveform, as a 1-D tensor would give it
        return torch.Size([self.length])

    def __repr__(self) -> str:
        return f"LongClip({self.name}, {self.frames / self.rate:.1f} s at {self.rate} Hz, {self.channels} ch)"

    def _read(self, start: int, stop: int) -> torch.Tensor:
        """Source frames [start, stop) → checked mono float32 samples (decoded in blocks: :func:`~.audio_io.read_mono`)."""
        mono, _, _ = read_mono(self.source, self.name, self.channel, start=start, frames=stop - start)
        if not mono.size:
            raise DataError(f"{self.name}: no samples at frame {start} although its header says {self.frames}")
        return torch.from_numpy(mono)

    def window(self, start: int, length: int) -> torch.Tensor:
        """Samples [start, start + length) of the clip at ``target`` Hz (zeros past its end)."""
        if same_rate(self.rate, self.target):  # equal rates, or read as equal (16,001 Hz to 16,000: resample_periods)
            stop = min(start + length, self.frames)
            out = self._read(start, stop)
        else:
            per_src, per_out = resample_periods(self.rate, self.target)  # one period: source frames → output samples
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

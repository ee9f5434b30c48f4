"""One audio item in: :meth:`AudioAdapter.load <anycl.adapters.audio.AudioAdapter.load>` decodes it
(:mod:`.audio_io`), mixes it down to mono, checks it and resamples it to the adapter's rate, keeping decoded
files in memory (within ``cache_mb`` MiB, and ``cache_clips`` clips where given: :mod:`.item_cache`); a file
longer than ``stream_seconds`` stays a :class:`~.audio_window.LongClip` whose windows the views read, one longer
than ``max_seconds`` is refused.

:class:`ClipLoading` is a base class of :class:`~anycl.adapters.audio.AudioAdapter`: its methods are the adapter's
and read the options the adapter's ``__init__`` sets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import torch

from anycl.errors import DataError

from .audio_io import (
    check_samples,
    describe,
    file_info,
    mixdown,
    read_mono,
    resample,
    split_item,
    to_channels_first,
    zero_length,
)
from .audio_window import LongClip
from .item_cache import DecodedCache

log = logging.getLogger("anycl")


class ClipLoading:
    """``load`` and its cache of decoded clips (a base class of the audio adapter)."""

    if TYPE_CHECKING:  # set by AudioAdapter.__init__ / _set_rate
        sample_rate: int
        samples: int
        channel: Union[str, int]
        input_sample_rate: Optional[int]
        cache_clips: Optional[int]
        max_seconds: float
        stream_seconds: float
        _cache: DecodedCache
        _told_mixdown: bool

    def load(self, item: Any) -> Union[torch.Tensor, LongClip]:
        """Decode → mono → checked → resampled: a 1-D float32 tensor at ``sample_rate``; for a file longer
        than ``stream_seconds`` (and than the window), a :class:`~.audio_window.LongClip` whose windows the
        views read from the file.

        Raises DataError naming the clip if it cannot be decoded, is longer than ``max_seconds``, is empty or
        holds NaN/inf samples.
        """
        name = describe(item)
        kind, payload, rate = split_item(item, self.input_sample_rate)
        cache_key = self._cache.key(payload) if kind == "file" else None
        kept = self._cache.get(cache_key)
        if kept is not None:
            return kept
        if kind == "file":
            frames, rate, channels = file_info(payload, name)
            if frames > self.max_seconds * rate:
                raise DataError(
                    f"{name} is {frames / rate:.0f} s long, more than the audio adapter's max_seconds="
                    f"{self.max_seconds:g}; cut it into shorter files or raise the limit "
                    f"(adapter_options={{'max_seconds': ...}})"
                )
            if frames > self.stream_seconds * rate and LongClip.resampled_length(frames, rate, self.sample_rate) > (
                self.samples
            ):
                clip = LongClip(payload, name, frames, rate, channels, self.sample_rate, self.channel)
                return self._cache.keep(cache_key, clip)
            # decoded block by block, each mixed down (no more than its header says: a span of `frames`)
            samples, rate, channels = read_mono(payload, name, self.channel, frames=frames)
            if not samples.size:  # the blocks' samples were checked as they were read
                raise zero_length(name)
            self._tell_mixdown(name, channels)
            mono = torch.from_numpy(samples)
        else:
            wave = to_channels_first(payload, name)
            check_samples(wave, name)
            self._tell_mixdown(name, wave.shape[0])
            mono = torch.from_numpy(np.ascontiguousarray(mixdown(wave, self.channel, name)))
        assert rate is not None  # split_item gives an array its rate; read_mono gives a file's
        out = resample(mono, rate, self.sample_rate).contiguous()
        if out.numel() == 0:
            raise DataError(f"{name} is too short to keep any sample at {self.sample_rate} Hz")
        return self._cache.keep(cache_key, out)

    def _tell_mixdown(self, name: str, channels: int) -> None:
        """Say once (an info line) how multichannel clips are mixed down, naming the first."""
        if channels > 1 and not self._told_mixdown:
            self._told_mixdown = True
            how = "averaging the channels" if self.channel == "mean" else f"keeping channel {self.channel}"
            log.info(
                "audio: multichannel clips are mixed down to mono by %s (first: %s, %d channels)", how, name, channels
            )

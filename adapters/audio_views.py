"""The windows an audio clip's views are cut from: in training a random window of ``clip_seconds`` (or the
whole clip, padded), then the waveform augmentations (:mod:`.audio_augment`); the local views' shorter windows
(``local_seconds``); in evaluation and ``encode`` the centre window, or ``eval_windows`` evenly spaced ones. A
:class:`~.audio_window.LongClip` reads only its windows from the file.

:class:`ClipViews` is a base class of :class:`~anycl.adapters.audio.AudioAdapter`: its methods are the adapter's
and read the options the adapter's ``__init__`` sets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import numpy as np
import torch

from .audio_augment import random_segment, segment_start, waveform_view
from .audio_window import LongClip, span

if TYPE_CHECKING:
    from .audio_pretrained import AudioFeatures


class ClipViews:
    """``augment``, ``local_view``, ``eval_view`` and the padding and windows they share (a base class of the
    audio adapter)."""

    if TYPE_CHECKING:  # set by AudioAdapter.__init__ / _set_rate / attach
        samples: int
        local_samples: int
        pad: str
        eval_crop: str
        eval_windows: int
        aug: Dict[str, Any]
        _pretrained: Optional[AudioFeatures]

    def fit_length(self, wave: torch.Tensor) -> torch.Tensor:
        """Pad (silence, or repeats with ``pad="repeat"``) a clip shorter than the window to its length."""
        n = wave.shape[-1]
        if n >= self.samples:
            return wave
        if self.pad == "repeat":
            return wave.repeat(-(-self.samples // n))[: self.samples]
        if self._pretrained is not None:  # its feature extractor pads, with a mask the pooling reads
            return wave
        return torch.nn.functional.pad(wave, (0, self.samples - n))

    def augment(self, item: Union[torch.Tensor, LongClip], generator: torch.Generator) -> torch.Tensor:
        """One training view: a random window (or the whole clip, padded), then gain, noise and shift."""
        if isinstance(item, LongClip):  # longer than the window (load made sure): only the window is read
            start = segment_start(item.length, self.samples, generator) if self.aug["segment"] else None
            return waveform_view(
                self._centre(item) if start is None else item.window(start, self.samples), self.aug, generator
            )
        wave = self.fit_length(item)
        if wave.shape[-1] > self.samples:
            if self.aug["segment"]:
                wave = random_segment(wave, self.samples, generator)
            else:
                wave = self._centre(wave)
        return waveform_view(wave, self.aug, generator)

    def local_view(self, item: Union[torch.Tensor, LongClip], generator: torch.Generator) -> torch.Tensor:
        """One local view (multi-view training, :mod:`anycl.data.views`): a random window of
        ``local_seconds`` (default half of ``clip_seconds``), then gain, noise and shift."""
        if isinstance(item, LongClip):  # longer than the window (load made sure)
            start = segment_start(item.length, self.local_samples, generator)
            return waveform_view(item.window(start, self.local_samples), self.aug, generator)
        n = item.shape[-1]
        if n < self.local_samples:
            if self.pad == "repeat":
                wave = self.fit_length(item)[: self.local_samples]
            elif self._pretrained is not None:
                wave = item
            else:
                wave = torch.nn.functional.pad(item, (0, self.local_samples - n))
        else:
            wave = random_segment(item, self.local_samples, generator) if n > self.local_samples else item
        return waveform_view(wave, self.aug, generator)

    def _centre(self, wave: Union[torch.Tensor, LongClip]) -> torch.Tensor:
        return span(wave, max((wave.shape[-1] - self.samples) // 2, 0), self.samples)

    def eval_view(self, item: Union[torch.Tensor, LongClip]) -> torch.Tensor:
        """Deterministic: the centre window (S,), or ``eval_windows`` evenly spaced windows (K, S)."""
        wave = item if isinstance(item, LongClip) else self.fit_length(item)
        if self.eval_crop == "center":
            return self._centre(wave)
        extra = max(wave.shape[-1] - self.samples, 0)
        starts = np.linspace(0, extra, self.eval_windows).round().astype(int)
        return torch.stack([span(wave, int(s), self.samples) for s in starts])

    def window_count(self, features: Any) -> int:
        """K for (N, K, 1, F, T) log-mels of ``eval_crop="windows"``, 0 otherwise."""
        return int(features.shape[1]) if isinstance(features, torch.Tensor) and features.dim() == 5 else 0

    def example_views(self) -> List[torch.Tensor]:
        """Two seeded quiet noise clips, windowed as ``encode`` does (to trace an ONNX export with)."""
        g = torch.Generator().manual_seed(0)
        return [self.eval_view(torch.randn(self.samples, generator=g) * 0.1) for _ in range(2)]

"""The log-mel spectrogram of a batch of windows, computed on its device: one ``torchaudio`` ``MelSpectrogram``
per device (built once), natural-log power in float32 whatever the autocast, and the swap the ONNX export makes
(:meth:`LogMels.mel_replaced`).

:class:`LogMels` is a base class of :class:`~anycl.adapters.audio.AudioAdapter`: its methods are the adapter's
and read the settings the adapter's ``__init__`` sets.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Dict, Iterator

import torch
from torch import nn

LOG_EPS = 1e-6


class LogMels:
    """``mel``, ``log_mel``, ``mel_replaced`` and ``frames`` (a base class of the audio adapter)."""

    if TYPE_CHECKING:  # set by AudioAdapter.__init__ / _set_rate
        sample_rate: int
        samples: int
        n_mels: int
        n_fft: int
        win_length: int
        hop_length: int
        f_min: float
        f_max: float
        _mels: Dict[str, nn.Module]

    @contextmanager
    def mel_replaced(self, make: Callable[[nn.Module], nn.Module]) -> Iterator[None]:
        """Meanwhile the CPU mel spectrogram is ``make(the adapter's own)`` (the ONNX export swaps in one it can
        trace: :class:`anycl.export.to_onnx.RealMelSpectrogram`); afterwards the adapter's cache is as it was."""
        key = "cpu"
        swapped = self._mels.get(key)
        self._mels[key] = make(self.mel(torch.device(key)))
        try:
            yield
        finally:
            if swapped is None:
                self._mels.pop(key, None)
            else:
                self._mels[key] = swapped

    def mel(self, device: torch.device) -> nn.Module:
        """The ``MelSpectrogram`` transform on ``device`` (built once per device)."""
        key = str(device)
        if key not in self._mels:
            import torchaudio  # lazy: torchaudio: slow to import, only for resampling/decoding it does

            self._mels[key] = torchaudio.transforms.MelSpectrogram(
                sample_rate=self.sample_rate,
                n_fft=self.n_fft,
                win_length=self.win_length,
                hop_length=self.hop_length,
                f_min=self.f_min,
                f_max=self.f_max,
                n_mels=self.n_mels,
                power=2.0,
            ).to(device)
        return self._mels[key]

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(..., S) waveforms → (..., 1, n_mels, T) natural-log mel power (float32)."""
        with torch.autocast(device_type=waves.device.type, enabled=False):
            spec = self.mel(waves.device)(waves.float())
            return torch.log(spec + LOG_EPS).unsqueeze(-3)

    def frames(self) -> int:
        """Spectrogram frames of one window."""
        return self.samples // self.hop_length + 1

"""The log-mel spectrogram of a batch of windows, computed on its device: one ``torchaudio`` ``MelSpectrogram``
per device (built once), natural-log power in float32 whatever the autocast, and the swap the ONNX export makes
(:meth:`LogMels.mel_replaced`).

:class:`LogMels` is a base class of :class:`~anycl.adapters.audio.AudioAdapter`: its methods are the adapter's
and read the settings the adapter's ``__init__`` sets.

The power spectrum without the complex modulus (:class:`PowerMel`): torchaudio computes a power-2 spectrogram as
``stft(x).abs().pow(2)``: the complex modulus (a ``hypot`` per bin, guarded against overflow) and then its square.
:class:`PowerMel` takes the same STFT (window, frames, centring and padding read from the torchaudio module it
wraps) and adds the squares of its real and imaginary parts, then applies the same mel filter bank: the same
numbers up to float rounding (a unit or two in the last place of each bin's power), with the power step about 3×
faster (a third less time for the log-mels of a batch of 1 s windows on a CPU). A spectrogram torchaudio computes
otherwise (another power, normalised, padded) goes through torchaudio's own code. ``spectrogram`` and
``mel_scale`` (torchaudio's modules) stay readable: the ONNX export builds its traceable mel spectrogram from them
(:class:`anycl.export.to_onnx.RealMelSpectrogram`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator

import torch
from torch import nn

LOG_EPS = 1e-6


class PowerMel(nn.Module):
    """A torchaudio ``MelSpectrogram`` whose power-2 spectrum is ``re² + im²`` (see the module docstring)."""

    spectrogram: Any  # torchaudio's Spectrogram and MelScale modules (declared for type checkers)
    mel_scale: Any

    def __init__(self, mel: nn.Module):
        super().__init__()
        self.spectrogram, self.mel_scale = mel.spectrogram, mel.mel_scale

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        s = self.spectrogram
        if s.power != 2.0 or s.normalized or s.pad:
            return self.mel_scale(s(wave))  # torchaudio's MelSpectrogram.forward
        shape = wave.shape
        spec = torch.stft(
            wave.reshape(-1, shape[-1]),
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=s.window,
            center=s.center,
            pad_mode=s.pad_mode,
            normalized=False,
            onesided=s.onesided,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, F, T)
        mel = torch.matmul(power.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)
        return mel.reshape(tuple(shape[:-1]) + tuple(mel.shape[-2:]))


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
        """The ``MelSpectrogram`` transform on ``device`` (built once per device; its power spectrum computed
        without the complex modulus: :class:`PowerMel`)."""
        key = str(device)
        if key not in self._mels:
            import torchaudio  # lazy: torchaudio: slow to import, only for resampling/decoding it does

            self._mels[key] = PowerMel(
                torchaudio.transforms.MelSpectrogram(
                    sample_rate=self.sample_rate,
                    n_fft=self.n_fft,
                    win_length=self.win_length,
                    hop_length=self.hop_length,
                    f_min=self.f_min,
                    f_max=self.f_max,
                    n_mels=self.n_mels,
                    power=2.0,
                )
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

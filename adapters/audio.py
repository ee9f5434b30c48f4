"""Audio: clips in, log-mel spectrograms out, computed batched on the training device.

The path of one clip: :meth:`AudioAdapter.load` decodes it (:mod:`.audio_io`: soundfile for files
and bytes; arrays with their rate; Hugging Face ``Audio`` dicts), mixes it down to mono, checks it
(zero length, NaN/inf → :class:`~anycl.errors.DataError` naming the clip) and resamples it to
``sample_rate``. In training :meth:`augment` cuts a random window of ``clip_seconds`` (the two views
of a clip are two random segments: COLA) and applies waveform augmentations; in evaluation and
``encode`` :meth:`eval_view` takes the centre window, or ``eval_windows`` evenly spaced windows whose
embeddings the default encoder averages, so one clip always gives one embedding. :meth:`prepare`
computes log-mels (``torchaudio.transforms.MelSpectrogram``: 25 ms window, 10 ms hop, 64 mels by
default) for the whole batch on its device, then in training the spectrogram augmentations
(:mod:`.audio_augment`: mixup with a background bank, random resize-crop, SpecAugment masks).

A clip shorter than the window is padded with silence, or repeated (``pad="repeat"``).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from torch import nn

from anycl.errors import ConfigError, DataError, unknown_options

from .audio_augment import MixupBank, augment_config, random_segment, spectrogram_view, waveform_view
from .audio_encoder import AudioCNN
from .audio_io import check_samples, describe, mixdown, read_file, resample, split_item, to_channels_first
from .base import Adapter, item_key
from .preview import Preview, excerpt
from .registry import register

log = logging.getLogger("anycl")

LOG_EPS = 1e-6
AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".aifc",
    ".au",
    ".snd",
    ".caf",
    ".w64",
    ".rf64",
    ".wv",
)


@register("audio")
class AudioAdapter(Adapter):
    """Audio clips → log-mel spectrograms.

    Options (all JSON values, saved with the model):
        sample_rate: rate every clip is resampled to (Hz, default 16000).
        clip_seconds: window length fed to the encoder (default 1.0 s).
        n_mels, win_ms, hop_ms, n_fft, f_min, f_max: log-mel settings (64 mels, 25 ms, 10 ms, 512,
            50 Hz, sample_rate / 2).
        pad: ``"zero"`` (default) or ``"repeat"`` for clips shorter than the window.
        eval_crop: ``"center"`` (default) or ``"windows"``: ``eval_windows`` evenly spaced windows from
            the start to the end of the clip, their embeddings averaged (the default encoder averages
            a (N, K, 1, F, T) input; a custom encoder gets that 5-D tensor too).
        eval_windows: windows per clip with ``eval_crop="windows"`` (default 3).
        channel: ``"mean"`` (default) mixes several channels down to mono by averaging them; an int
            keeps that channel.
        input_sample_rate: sample rate of raw arrays given without one (default: such arrays are an error).
        augment: ``True``/``"default"`` (random segments, gain and shift), ``"strong"`` (also noise, mixup,
            resize-crop and masks), ``False``/``"none"``, or a dict of settings overriding a preset (its
            ``"preset"`` key; :data:`adapters.audio_augment.DEFAULT_AUGMENT`, ``STRONG_AUGMENT``).
        cache_clips: decoded, resampled clips kept in memory (by file path, size and mtime) so that
            each epoch does not decode them again (default 256; 0 = off).
        local_seconds: window of the local views of ``fit(..., local_views=L)`` (default half of
            ``clip_seconds``; :meth:`local_view`).
    """

    modality = "audio"
    file_extensions = AUDIO_EXTENSIONS
    onnx_input_name = "waveform"  # float32 (batch, samples) at the adapter's sample rate
    default_loss = "infonce"
    default_loss_options = {"temperature": 0.2}
    fit_defaults = {"batch_size": 64, "lr": 1e-3, "head": "mlp"}

    def __init__(
        self,
        sample_rate: int = 16000,
        clip_seconds: float = 1.0,
        n_mels: int = 64,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: Optional[int] = None,
        f_min: float = 50.0,
        f_max: Optional[float] = None,
        pad: str = "zero",
        eval_crop: str = "center",
        eval_windows: int = 3,
        channel: Union[str, int] = "mean",
        input_sample_rate: Optional[int] = None,
        augment: Any = True,
        cache_clips: int = 256,
        local_seconds: Optional[float] = None,
        **options,
    ):
        super().__init__(
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            n_mels=n_mels,
            win_ms=win_ms,
            hop_ms=hop_ms,
            n_fft=n_fft,
            f_min=f_min,
            f_max=f_max,
            pad=pad,
            eval_crop=eval_crop,
            eval_windows=eval_windows,
            channel=channel,
            input_sample_rate=input_sample_rate,
            augment=augment,
            cache_clips=cache_clips,
            local_seconds=local_seconds,
            **options,
        )
        if options:
            raise unknown_options("audio adapter", list(options), [k for k in self.options if k not in options])
        if pad not in ("zero", "repeat"):
            raise ConfigError(f"pad must be 'zero' or 'repeat', got {pad!r}")
        if eval_crop not in ("center", "windows"):
            raise ConfigError(f"eval_crop must be 'center' or 'windows', got {eval_crop!r}")
        if not (isinstance(channel, int) or channel == "mean"):
            raise ConfigError(f"channel must be 'mean' or a channel index, got {channel!r}")
        if sample_rate <= 0 or clip_seconds <= 0:
            raise ConfigError("sample_rate and clip_seconds must be positive")
        if local_seconds is not None and not 0 < local_seconds <= clip_seconds:
            raise ConfigError(f"local_seconds must be in (0, clip_seconds={clip_seconds}], got {local_seconds}")
        self.sample_rate = int(sample_rate)
        self.local_samples = int(round((local_seconds or clip_seconds / 2) * self.sample_rate))
        self.n_mels = int(n_mels)
        self.samples = int(round(clip_seconds * self.sample_rate))
        self.win_length = int(round(win_ms * self.sample_rate / 1000))
        self.hop_length = int(round(hop_ms * self.sample_rate / 1000))
        self.n_fft = int(n_fft) if n_fft else 1 << (self.win_length - 1).bit_length()
        if self.n_fft < self.win_length:
            raise ConfigError(f"n_fft={self.n_fft} is shorter than the {self.win_length}-sample window")
        self.f_min, self.f_max = float(f_min), float(f_max) if f_max else self.sample_rate / 2
        self.pad, self.eval_crop, self.eval_windows = pad, eval_crop, max(int(eval_windows), 1)
        self.channel, self.input_sample_rate = channel, input_sample_rate
        self.aug = augment_config(augment)
        self.cache_clips = int(cache_clips)
        self._cache: OrderedDict[Any, torch.Tensor] = OrderedDict()
        self._mels: Dict[str, nn.Module] = {}
        self._bank = MixupBank(self.aug["bank_size"])
        self._told_mixdown = False

    # ---- one item -----------------------------------------------------------------------------------
    def validate(self, item: Any, where: str) -> None:
        """Type and sample-rate checks only; decoding problems surface in :meth:`load` (skippable)."""
        super().validate(item, where)
        try:
            split_item(item, self.input_sample_rate)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None

    def key(self, item: Any) -> Any:
        return item_key(item)

    def load(self, item: Any) -> torch.Tensor:
        """Decode → mono → checked → resampled: a 1-D float32 tensor at ``sample_rate``.

        Raises DataError naming the clip if it cannot be decoded, is empty or holds NaN/inf samples.
        """
        name = describe(item)
        kind, payload, rate = split_item(item, self.input_sample_rate)
        cache_key = None
        if kind == "file" and isinstance(payload, str) and self.cache_clips > 0:
            try:
                st = os.stat(payload)
                cache_key = (payload, st.st_size, st.st_mtime_ns)
            except OSError:
                pass
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        if kind == "file":
            data, rate = read_file(payload, name)
            wave = np.ascontiguousarray(data.T)
        else:
            wave = to_channels_first(payload, name)
        assert rate is not None  # split_item gives an array its rate; read_file gives a file's
        check_samples(wave, name)
        if wave.shape[0] > 1 and not self._told_mixdown:
            self._told_mixdown = True
            how = "averaging the channels" if self.channel == "mean" else f"keeping channel {self.channel}"
            log.info(
                "audio: multichannel clips are mixed down to mono by %s (first: %s, %d channels)",
                how,
                name,
                wave.shape[0],
            )
        mono = torch.from_numpy(np.ascontiguousarray(mixdown(wave, self.channel, name)))
        out = resample(mono, rate, self.sample_rate).contiguous()
        if out.numel() == 0:
            raise DataError(f"{name} is too short to keep any sample at {self.sample_rate} Hz")
        if cache_key is not None:
            self._cache[cache_key] = out
            while len(self._cache) > self.cache_clips:
                self._cache.popitem(last=False)
        return out

    def fit_length(self, wave: torch.Tensor) -> torch.Tensor:
        """Pad (silence, or repeats with ``pad="repeat"``) a clip shorter than the window to its length."""
        n = wave.shape[-1]
        if n >= self.samples:
            return wave
        if self.pad == "repeat":
            return wave.repeat(-(-self.samples // n))[: self.samples]
        return torch.nn.functional.pad(wave, (0, self.samples - n))

    def augment(self, item: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One training view: a random window (or the whole clip, padded), then gain, noise and shift."""
        wave = self.fit_length(item)
        if wave.shape[-1] > self.samples:
            if self.aug["segment"]:
                wave = random_segment(wave, self.samples, generator)
            else:
                wave = self._centre(wave)
        return waveform_view(wave, self.aug, generator)

    def local_view(self, item: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One local view (multi-view training, :mod:`anycl.data.views`): a random window of
        ``local_seconds`` (default half of ``clip_seconds``), then gain, noise and shift."""
        n = item.shape[-1]
        if n < self.local_samples:
            wave = (
                self.fit_length(item)[: self.local_samples]
                if self.pad == "repeat"
                else torch.nn.functional.pad(item, (0, self.local_samples - n))
            )
        else:
            wave = random_segment(item, self.local_samples, generator) if n > self.local_samples else item
        return waveform_view(wave, self.aug, generator)

    def _centre(self, wave: torch.Tensor) -> torch.Tensor:
        start = (wave.shape[-1] - self.samples) // 2
        return wave[start : start + self.samples]

    def preview(self, item: Any) -> Preview:
        """A short excerpt (the middle 2 s, mono) the training report plays."""
        return excerpt(self.load(item), self.sample_rate)

    def eval_view(self, item: torch.Tensor) -> torch.Tensor:
        """Deterministic: the centre window (S,), or ``eval_windows`` evenly spaced windows (K, S)."""
        wave = self.fit_length(item)
        if self.eval_crop == "center":
            return self._centre(wave)
        extra = wave.shape[-1] - self.samples
        starts = np.linspace(0, extra, self.eval_windows).round().astype(int)
        return torch.stack([wave[s : s + self.samples] for s in starts])

    def example_views(self) -> List[torch.Tensor]:
        """Two seeded quiet noise clips, windowed as ``encode`` does (to trace an ONNX export with)."""
        g = torch.Generator().manual_seed(0)
        return [self.eval_view(torch.randn(self.samples, generator=g) * 0.1) for _ in range(2)]

    def collate(self, items: List[torch.Tensor]) -> torch.Tensor:
        shapes = {tuple(x.shape) for x in items}
        if len(shapes) > 1:
            raise ValueError(f"audio views of different shapes in one batch: {sorted(shapes)}")
        return torch.stack(items)

    # ---- batched, on device -------------------------------------------------------------------------
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

    def prepare(self, batch: torch.Tensor, train: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Log-mels of the batch on its device; in training, then mixup, resize-crop and masks.

        ``batch``: (N, S) windows, or (N, K, S) evaluation windows. Returns (N, 1, F, T) or (N, K, 1, F, T).
        """
        x = self.log_mel(batch)
        if train and x.dim() == 4:
            x = spectrogram_view(x, self.aug, generator, self._bank)
        return x

    # ---- encoder ------------------------------------------------------------------------------------
    def default_encoder(self, **options) -> nn.Module:
        """:class:`~adapters.audio_encoder.AudioCNN` (options: channels, embedding_dim, dropout)."""
        n_mels = options.pop("n_mels", self.n_mels)
        if n_mels != self.n_mels:
            raise ConfigError(f"the encoder's n_mels={n_mels} differs from the adapter's n_mels={self.n_mels}")
        return AudioCNN(n_mels=n_mels, **options)

    def frames(self) -> int:
        """Spectrogram frames of one window."""
        return self.samples // self.hop_length + 1

    def __getstate__(self):  # workers get the config, not the device transforms or the bank
        state = dict(self.__dict__)
        state["_mels"] = {}
        state["_bank"] = MixupBank(self.aug["bank_size"])
        return state

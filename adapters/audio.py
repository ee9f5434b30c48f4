"""Audio: clips in, log-mel spectrograms out, computed batched on the training device.

The path of one clip: :meth:`AudioAdapter.load` decodes it (:mod:`.audio_io`: soundfile for files
and bytes; arrays with their rate; Hugging Face ``Audio`` dicts), mixes it down to mono, checks it
(zero length, NaN/inf → :class:`~anycl.errors.DataError` naming the clip) and resamples it to
``sample_rate``. In training :meth:`augment` cuts a random window of ``clip_seconds`` (the two views
of a clip are two random segments: COLA) and applies waveform augmentations; in evaluation and
``encode`` :meth:`eval_view` takes ``eval_windows`` evenly spaced windows whose embeddings the encoder
averages (or the centre window, ``eval_crop="center"``), so one clip always gives one embedding. :meth:`prepare`
computes log-mels (``torchaudio.transforms.MelSpectrogram``: 25 ms window, 10 ms hop, 64 mels by
default) for the whole batch on its device, then in training the spectrogram augmentations
(:mod:`.audio_augment`: mixup with a background bank, random resize-crop, SpecAugment masks).

A clip shorter than the window is padded with silence, or repeated (``pad="repeat"``). A file longer than
``stream_seconds`` is never decoded whole: its views read their windows from it (:mod:`.audio_window`); a
file longer than ``max_seconds`` (by its header) is refused.

With a pretrained ``transformers`` encoder (``fit(..., model="<name or folder>")``,
:mod:`.audio_pretrained`) the tower's adapter takes that model's sample rate, leaves out the log-mels and
their augmentations, and :meth:`collate` runs the model's own feature extractor; a clip shorter than the
window is padded there, with a mask, so the pooling leaves the padding out.

The adapter's parts, each a base class of :class:`AudioAdapter`: :mod:`.audio_load` (``load`` and its cache),
:mod:`.audio_views` (the training, local and evaluation windows), :mod:`.audio_mel` (the log-mels).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from anycl.errors import ConfigError, DataError, unknown_options

from . import audio_weights
from .audio_augment import (
    SPECTROGRAM_AUGMENTS,
    MixupBank,
    augment_config,
    describe_augment,
    named_settings,
    spectrogram_view,
)
from .audio_encoder import AudioCNN
from .audio_io import resample, split_item
from .audio_load import ClipLoading
from .audio_mel import LOG_EPS, LogMels  # noqa: F401  (LOG_EPS: importable here)
from .audio_pretrained import KIND as PRETRAINED_KIND
from .audio_pretrained import AudioFeatures, PretrainedAudioEncoder, load_saved, open_pretrained
from .audio_pretrained import save as save_pretrained_tower
from .audio_views import ClipViews
from .audio_window import span
from .base import Adapter, item_key
from .item_cache import MB, DecodedCache, check_size
from .preview import EXCERPT_SECONDS, Preview, excerpt
from .registry import register

DEFAULT_SAMPLE_RATE = 16000
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
MAX_SECONDS = 3 * 3600.0  # the longest file accepted (adapter option max_seconds)
CACHE_MB = 1024.0  # decoded clips kept in memory across epochs (adapter option cache_mb)
CACHE_OPTIONS = ("cache_clips", "cache_mb")  # recorded only when given (a saved model's options stay as they were)
STREAM_SECONDS = 60.0  # files longer than this are read window by window (adapter option stream_seconds)
DEFAULT_LIMITS = {"max_seconds": MAX_SECONDS, "stream_seconds": STREAM_SECONDS}


@register("audio")
class AudioAdapter(ClipLoading, ClipViews, LogMels, Adapter):
    """Audio clips → log-mel spectrograms.

    Options (all JSON values, saved with the model):
        sample_rate: rate every clip is resampled to (Hz, default 16000; with a pretrained encoder, its
            feature extractor's rate).
        clip_seconds: window length fed to the encoder (default 1.0 s).
        n_mels, win_ms, hop_ms, n_fft, f_min, f_max: log-mel settings (64 mels, 25 ms, 10 ms, 512,
            50 Hz, sample_rate / 2).
        pad: ``"zero"`` (default) or ``"repeat"`` for clips shorter than the window.
        eval_crop: ``"windows"`` (default) — ``eval_windows`` evenly spaced windows from the start to the end
            of the clip, their embeddings averaged (the default encoder averages a (N, K, 1, F, T) input itself;
            for an encoder without ``accepts_windows = True`` the tower embeds each window as an item and
            averages), so a clip longer than the window is judged by more than
            its middle — or ``"center"``: the centre window only (the default before issue 29; chosen on the
            audio dev protocol, ``benchmarks/results/audio_protocol.md``).
        eval_windows: windows per clip with ``eval_crop="windows"`` (default 3).
        channel: ``"mean"`` (default) mixes several channels down to mono by averaging them; an int
            keeps that channel.
        input_sample_rate: sample rate of raw arrays given without one (default: such arrays are an error).
        augment: ``True``/``"default"`` (random segments, gain, shift and narrow log-mel masks), ``"strong"``
            (also noise, mixup and resize-crop), ``"content"`` (the default with frequency masks twice as wide: for
            classes that do not depend on the voice), ``False``/``"none"``, or a dict of settings overriding a preset (its
            ``"preset"`` key; :data:`adapters.audio_augment.DEFAULT_AUGMENT`, ``STRONG_AUGMENT``,
            ``CONTENT_AUGMENT``).
        cache_clips, cache_mb: decoded, resampled clips of files kept in memory (by file path, size and mtime)
            so that an epoch after the first does not decode them again (:mod:`.item_cache`): at most
            ``cache_mb`` MiB of samples (default 1024: about 4.6 hours at 16 kHz) and, where given, at most
            ``cache_clips`` clips (default None: no count; 0 = off). Once full, the kept clips stay and the
            others are decoded at each read.
        local_seconds: window of the local views of ``fit(..., local_views=L)`` (default half of
            ``clip_seconds``; :meth:`local_view`).
        max_seconds: the longest audio file (or encoded bytes) accepted, by its header's duration (default
            10800: 3 hours); a longer one is a DataError naming it (skippable with ``on_bad_item="skip"``).
        stream_seconds: files longer than this (default 60) are never decoded whole: their windows are read
            from the file as they are needed (:mod:`.audio_window`), so a long file costs its windows.
    """

    modality = "audio"
    file_extensions = AUDIO_EXTENSIONS
    onnx_input_name = "waveform"  # float32 (batch, samples) at the adapter's sample rate
    default_loss = "infonce"
    default_loss_options = {"temperature": 0.2}
    fit_defaults = {"batch_size": 64, "lr": 1e-3, "head": "mlp"}
    # a pretrained transformers encoder (model=) is fine-tuned: a learning rate that keeps what it learnt
    pretrained_fit_defaults = {"batch_size": 32, "lr": 5e-5}

    def __init__(
        self,
        sample_rate: Optional[int] = None,
        clip_seconds: float = 1.0,
        n_mels: int = 64,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: Optional[int] = None,
        f_min: float = 50.0,
        f_max: Optional[float] = None,
        pad: str = "zero",
        eval_crop: str = "windows",
        eval_windows: int = 3,
        channel: Union[str, int] = "mean",
        input_sample_rate: Optional[int] = None,
        augment: Any = True,
        cache_clips: Optional[int] = None,
        cache_mb: float = CACHE_MB,
        local_seconds: Optional[float] = None,
        max_seconds: float = MAX_SECONDS,
        stream_seconds: float = STREAM_SECONDS,
        **options,
    ):
        limits = {"max_seconds": max_seconds, "stream_seconds": stream_seconds}
        self._rate_given = sample_rate is not None
        sample_rate = DEFAULT_SAMPLE_RATE if sample_rate is None else sample_rate
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
            **({"cache_clips": cache_clips} if cache_clips is not None else {}),  # recorded when given
            **({"cache_mb": cache_mb} if cache_mb != CACHE_MB else {}),  # recorded when not the default
            local_seconds=local_seconds,
            **{k: v for k, v in limits.items() if v != DEFAULT_LIMITS[k]},  # recorded when not the default
            **options,
        )
        for k, v in limits.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise ConfigError(f"audio adapter option {k} must be a positive number of seconds, got {v!r}")
        self.max_seconds, self.stream_seconds = float(max_seconds), float(stream_seconds)
        if options:
            raise unknown_options(
                "audio adapter",
                list(options),
                [k for k in self.options if k not in options and k not in (*limits, *CACHE_OPTIONS)]
                + [*limits, *CACHE_OPTIONS],
            )
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
        self.n_mels = int(n_mels)
        self._pretrained: Optional[AudioFeatures] = None  # a pretrained encoder's feature extractor (attach)
        self._set_rate(int(sample_rate))
        self.pad, self.eval_crop, self.eval_windows = pad, eval_crop, max(int(eval_windows), 1)
        self.channel, self.input_sample_rate = channel, input_sample_rate
        self.aug = augment_config(augment)
        if cache_clips is not None:
            check_size("audio adapter", "cache_clips", cache_clips, integer=True)
        check_size("audio adapter", "cache_mb", cache_mb)
        self.cache_clips = None if cache_clips is None else int(cache_clips)
        self._cache = DecodedCache(cache_mb, self.cache_clips)
        self._mels: Dict[str, nn.Module] = {}
        self._bank = MixupBank(self.aug["bank_size"])
        self._told_mixdown = False

    def _set_rate(self, rate: int) -> None:
        """The sample rate and what follows from it: window and local-view samples, STFT sizes."""
        o = self.options
        self.sample_rate = o["sample_rate"] = int(rate)
        self.local_samples = int(round((o["local_seconds"] or o["clip_seconds"] / 2) * rate))
        self.samples = int(round(o["clip_seconds"] * rate))
        self.win_length = int(round(o["win_ms"] * rate / 1000))
        self.hop_length = int(round(o["hop_ms"] * rate / 1000))
        self.n_fft = int(o["n_fft"]) if o["n_fft"] else 1 << (self.win_length - 1).bit_length()
        if self.n_fft < self.win_length:
            raise ConfigError(f"n_fft={self.n_fft} is shorter than the {self.win_length}-sample window")
        self.f_min, self.f_max = float(o["f_min"]), float(o["f_max"]) if o["f_max"] else rate / 2

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

    def preview(self, item: Any) -> Preview:
        """A short excerpt (the middle 2 s, mono) the training report plays; a long file is read only there."""
        wave = self.load(item)
        n = int(round(EXCERPT_SECONDS * self.sample_rate))
        return excerpt(span(wave, max((wave.shape[-1] - n) // 2, 0), n), self.sample_rate)

    def collate(self, items: List[torch.Tensor]) -> Any:
        """The views stacked, (N, S) or (N, K, S); with a pretrained encoder, its features (a dict)."""
        if self._pretrained is not None:
            return self._pretrained.collate(items, self.samples)
        shapes = {tuple(x.shape) for x in items}
        if len(shapes) > 1:
            raise ValueError(f"audio views of different shapes in one batch: {sorted(shapes)}")
        return torch.stack(items)

    # ---- batched, on device (the log-mels: .audio_mel) -----------------------------------------------
    def prepare(self, batch: torch.Tensor, train: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Log-mels of the batch on its device; in training, then mixup, resize-crop and masks.

        ``batch``: (N, S) windows, or (N, K, S) evaluation windows. Returns (N, 1, F, T) or (N, K, 1, F, T).
        A pretrained encoder's features pass as they are.
        """
        if self._pretrained is not None:
            return batch
        x = self.log_mel(batch)
        if train and x.dim() == 4:
            x = spectrogram_view(x, self.aug, generator, self._bank)
        return x

    # ---- encoder ------------------------------------------------------------------------------------
    def default_encoder(self, model: Optional[str] = None, pretrained: Optional[bool] = None, **options) -> nn.Module:
        """:class:`~adapters.audio_encoder.AudioCNN` (options: channels, embedding_dim, dropout, pooling,
        skip_silence, readout, freeze) started from the shipped pretrained weights where it is their setting (``pretrained``:
        None = where they fit, True = insist, False = random weights; :mod:`.audio_weights`), or with
        ``model`` (a Hub name or a folder) that pretrained ``transformers`` encoder (option: freeze)."""
        if model is not None:
            if pretrained is not None:
                raise ConfigError("encoder_options 'pretrained' is for anycl's own audio CNN; model= is pretrained")
            return open_pretrained(model, **options)
        valid = set(inspect.signature(AudioCNN).parameters)
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(
                f"unknown encoder_options {unknown} for anycl's audio CNN; valid: {', '.join(sorted(valid))}"
            )
        n_mels = options.pop("n_mels", self.n_mels)
        if n_mels != self.n_mels:
            raise ConfigError(f"the encoder's n_mels={n_mels} differs from the adapter's n_mels={self.n_mels}")
        return audio_weights.start(AudioCNN(n_mels=n_mels, **options), pretrained, self)

    def attach(self, encoder: nn.Module) -> None:
        """A pretrained encoder sets the sample rate (its feature extractor's) and feeds itself: no log-mels."""
        if not isinstance(encoder, PretrainedAudioEncoder):
            return
        named = named_settings(self.options["augment"])
        for k in SPECTROGRAM_AUGMENTS:  # the default's log-mel masks have no log-mels here: off; named ones refused
            if k not in named:
                self.aug[k] = 0
        encoder.check_adapter_options(self.options, self.aug, MEL_DEFAULTS, self._rate_given)
        self._set_rate(encoder.sampling_rate)
        encoder.check_window(self.samples, self.options["clip_seconds"])
        self._pretrained = encoder.features

    def from_view(self, view: torch.Tensor, source: Any) -> torch.Tensor:
        """Another audio adapter's view (a 1-D clip at its ``sample_rate``) resampled to this adapter's rate."""
        rate = int(getattr(source, "sample_rate", self.sample_rate))
        return view if rate == self.sample_rate else resample(view, rate, self.sample_rate).contiguous()

    def recipe(self) -> Dict[str, str]:
        """The window (``clip_seconds``) and the augmentations switched on, for the run's recipe line."""
        window = f"{self.options['clip_seconds']:g} s at {self.sample_rate} Hz"
        return {"window": window, "augment": describe_augment(self.aug, spectrogram=self._pretrained is None)}

    def save_encoder(self, encoder: nn.Module, directory: str) -> Dict[str, Any]:
        if isinstance(encoder, PretrainedAudioEncoder):  # config.json, preprocessor_config.json, model.safetensors
            return save_pretrained_tower(encoder, directory)
        return super().save_encoder(encoder, directory)

    def load_encoder(self, spec: Dict[str, Any], directory: str) -> nn.Module:
        if spec.get("kind") == PRETRAINED_KIND:
            return load_saved(spec, directory)
        if isinstance(spec.get("options"), dict):  # the folder's weights replace any start: build it random
            spec = {**spec, "options": {**spec["options"], "pretrained": False}}
        return super().load_encoder(spec, directory)

    def __getstate__(self):  # workers get the config, not the device transforms or the bank
        state = dict(self.__dict__)
        state["_mels"] = {}
        state["_bank"] = MixupBank(self.aug["bank_size"])
        state["_cache"] = DecodedCache(self._cache.budget / MB, self.cache_clips)  # not shipped: fills there
        return state


# anycl's own log-mel settings at their defaults (a pretrained encoder refuses others: it has its own)
MEL_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(AudioAdapter.__init__).parameters.items()
    if k in ("n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max")
}

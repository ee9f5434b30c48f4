"""Decoding audio items into mono float32 waveforms at one sample rate.

Accepted items (see :func:`decode`):

- a path (``str`` / ``os.PathLike``) to a file libsndfile reads (wav, flac, ogg/vorbis, opus, mp3,
  aiff, …), decoded with ``soundfile`` (``torchaudio.load`` needs torchcodec/FFmpeg since 2.9);
- ``bytes`` holding such a file;
- a ``(array, sample_rate)`` tuple, or a NumPy array / torch tensor alone when the adapter is given
  ``input_sample_rate``;
- a Hugging Face ``Audio`` feature dict: ``{"array", "sampling_rate"}`` (decoded) or
  ``{"path", "bytes"}`` (``Audio(decode=False)``).

Arrays may be 1-D (mono) or 2-D with channels on the short axis (``(channels, samples)`` as torch
and HF give them, or ``(samples, channels)`` as soundfile gives them). Integer PCM is scaled to
[-1, 1). Several channels are mixed down to mono by averaging them (or one channel is kept, by option).
Resampling uses ``torchaudio.transforms.Resample`` — the windowed-sinc kernel of
``torchaudio.functional.resample`` — built once per (source rate, target rate) pair and cached.

Bounds, so that a small crafted file cannot make anycl allocate gigabytes:

- that kernel has (new / gcd) × (orig / gcd + its width) taps, so rates that share no factor cost more than any
  clip (8,001 Hz to 16,000 Hz: 128 M taps, and a 1.6 KB file grew the peak memory by about 4 GB while it was built);
  past :data:`KERNEL_TAPS` taps the ratio is replaced by the nearest one with a small kernel
  (:func:`resample_periods`: 4,001 Hz is resampled at 3999/1000, off by 6e-8; 8,001 Hz at 2/1, off by 1.2e-4), with a
  warning;
- a file is decoded in blocks of at most :data:`DECODE_SAMPLES` samples (frames × channels), each mixed down to
  mono before the next is read (:func:`read_mono`): a file of 255 silent Vorbis channels costs its mono samples;
- a file's sample rate above :data:`MAX_RATE` is refused (a one-second window would be billions of frames).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from fractions import Fraction
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

from anycl.errors import DataError

MAX_CHANNELS = 32  # a 2-D array whose both axes are longer than this is not (channels, samples)
MAX_RATE = 768_000  # the highest sample rate of a file anycl decodes (Hz): the fastest converters in use
DECODE_SAMPLES = 1 << 22  # the most samples (frames x channels) decoded at once: 16 MiB of float32
KERNEL_TAPS = 1 << 22  # the largest resampling kernel built (taps; 16 MiB kept in float32)
# torchaudio.functional.resample's defaults, which size its kernel
LOWPASS_WIDTH, ROLLOFF = 6, 0.99

log = logging.getLogger("anycl")


def describe(item: Any) -> str:
    """A short name for an item in error messages: the file path, or the kind and size of the data."""
    if isinstance(item, (str, os.PathLike)):
        return f"audio file {os.fspath(item)!r}"
    if isinstance(item, (bytes, bytearray)):
        return f"audio bytes ({len(item)} B)"
    if isinstance(item, dict):
        if item.get("path"):
            return f"audio item {item['path']!r}"
        if item.get("bytes") is not None:
            return f"audio bytes ({len(item['bytes'])} B)"
        arr = item.get("array")
        return f"audio array of shape {tuple(np.shape(arr)) if arr is not None else ()}"
    if isinstance(item, (tuple, list)) and item:
        return f"audio array of shape {tuple(np.shape(item[0]))}"
    return f"audio array of shape {tuple(np.shape(item))}"


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or torch.is_tensor(x)


def split_item(item: Any, input_sample_rate: Optional[int] = None) -> Tuple[str, Any, Optional[int]]:
    """Classify an item: ``("file", path_or_bytes, None)`` or ``("array", array, rate)``.

    Raises DataError for an unsupported type, a raw array with no known sample rate, or a bad rate.
    """
    name = describe(item)
    if isinstance(item, (str, os.PathLike)):
        return "file", os.fspath(item), None
    if isinstance(item, (bytes, bytearray)):
        return "file", bytes(item), None
    if isinstance(item, dict):
        if item.get("array") is not None:
            rate = item.get("sampling_rate")
            if rate is None:
                rate = input_sample_rate
            if rate is None:
                raise DataError(
                    f"{name} has no 'sampling_rate': the sample rate of a raw array is unknown; give "
                    f"{{'array': ..., 'sampling_rate': 16000}} or set adapter_options={{'input_sample_rate': ...}}"
                )
            return "array", item["array"], _rate(rate, name)
        if item.get("bytes") is not None:
            return "file", bytes(item["bytes"]), None
        if item.get("path"):
            return "file", os.fspath(item["path"]), None
        raise DataError(f"an audio dict needs 'array' + 'sampling_rate', 'bytes' or 'path'; got keys {sorted(item)}")
    if isinstance(item, (tuple, list)):
        if len(item) == 2 and _is_array(item[0]) and isinstance(item[1], (int, float, np.integer, np.floating)):
            return "array", item[0], _rate(item[1], name)
        raise DataError(
            f"an audio tuple must be (array, sample_rate), got a {type(item).__name__} of {len(item)} "
            f"element(s) ({', '.join(type(v).__name__ for v in item[:3])})"
        )
    if _is_array(item):
        if input_sample_rate is None:
            raise DataError(
                f"{name} has no sample rate: the sample rate of a raw array is unknown; pass (array, "
                f"sample_rate), {{'array': ..., 'sampling_rate': ...}}, or set "
                f"adapter_options={{'input_sample_rate': ...}}"
            )
        return "array", item, _rate(input_sample_rate, name)
    raise DataError(
        f"cannot use a {type(item).__name__} as an audio item; give a file path, bytes, (array, sample_rate) "
        f"or a Hugging Face Audio dict"
    )


def _rate(rate: Any, name: str) -> int:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise DataError(f"{name}: the sample rate must be a number, got {rate!r}") from None
    if not np.isfinite(r) or r <= 0 or r != int(r):
        raise DataError(f"{name}: the sample rate must be a positive whole number of Hz, got {rate!r}")
    return int(r)


def _open(source: Union[str, bytes], name: str):
    """A ``soundfile.SoundFile`` open for reading ``source`` (a path or encoded bytes); DataError if it cannot be."""
    import soundfile as sf  # lazy: soundfile: only when a file is decoded

    if isinstance(source, str) and not os.path.exists(source):
        raise DataError(f"{name} does not exist")
    if isinstance(source, str) and os.path.isdir(source):
        raise DataError(f"{name} is a folder, not an audio file")
    if isinstance(source, str) and not os.path.isfile(source):
        raise DataError(f"{name} is not a regular file (a FIFO, socket or device); give an audio file")
    try:
        return sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError for bad data
        raise _undecodable(name, exc) from exc


def _undecodable(name: str, exc: Exception) -> DataError:
    return DataError(
        f"cannot decode {name}: {exc} (is it a corrupt or unsupported audio file? "
        f"formats libsndfile reads: wav, flac, ogg, mp3, aiff, …)"
    )


def file_info(source: Union[str, bytes], name: str) -> Tuple[int, int, int]:
    """(frames, sample rate, channels) from a file's header, without decoding its samples; DataError for a sample
    rate above :data:`MAX_RATE`."""
    with _open(source, name) as f:
        frames, rate, channels = int(f.frames), int(f.samplerate), int(f.channels)
    if rate > MAX_RATE:
        raise DataError(
            f"{name} says its sample rate is {rate:,} Hz, above the {MAX_RATE:,} Hz anycl decodes; resample it "
            f"first (e.g. sox in.wav -r 192000 out.wav) or check the file: its header may be damaged"
        )
    return frames, rate, channels


def read_mono(
    source: Union[str, bytes], name: str, channel: Union[str, int] = "mean", start: int = 0, frames: int = -1
) -> Tuple[np.ndarray, int, int]:
    """Decode a path or encoded bytes with soundfile → (mono float32 samples, sample rate, channels).

    ``start`` / ``frames``: only that span of the file is decoded (seeking to ``start``; ``frames=-1``: to the end),
    so that a window of a long file costs the window, not the file. The span is read in blocks of at most
    :data:`DECODE_SAMPLES` samples over all channels; each is checked (:func:`check_samples`: NaN/inf, naming the
    channel) and mixed down (:func:`mixdown`) before the next is read, so memory follows the mono samples, however
    many channels the file has. An empty span gives no samples (the caller says what that means)."""
    with _open(source, name) as f:
        channels = int(f.channels)
        block = max(1, DECODE_SAMPLES // max(channels, 1))
        parts, left, done = [], int(frames), 0
        try:
            if start:
                f.seek(int(start))
            while left != 0:
                data = f.read(block if left < 0 else min(block, left), dtype="float32", always_2d=True)
                if not len(data):
                    break
                wave = np.ascontiguousarray(data.T)
                del data
                check_samples(wave, name, offset=done)
                parts.append(np.array(mixdown(wave, channel, name), dtype=np.float32))  # a copy: the block is freed
                done += wave.shape[-1]
                left = left - wave.shape[-1] if left > 0 else left
        except DataError:
            raise
        except Exception as exc:  # a truncated or corrupt stream fails while decoding
            raise _undecodable(name, exc) from exc
        mono = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return mono, int(f.samplerate), channels


def to_channels_first(array: Any, name: str) -> np.ndarray:
    """Any 1-D/2-D array or tensor → float32 ``(channels, samples)``; integer PCM is scaled to [-1, 1)."""
    if torch.is_tensor(array):
        array = array.detach().cpu()
        array = array.float().numpy() if array.is_floating_point() or array.dtype == torch.bool else array.numpy()
    a = np.asarray(array)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(f"{name}: samples must be numbers, got an array of dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        if info.min < 0:
            a = a.astype(np.float32) / float(-info.min)
        else:  # unsigned PCM (8-bit wav): centred on the middle value
            mid = (info.max + 1) / 2
            a = (a.astype(np.float32) - mid) / mid
    a = a.astype(np.float32, copy=False)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim == 2:
        rows, cols = a.shape
        if rows <= cols and rows <= MAX_CHANNELS:
            return a
        if cols < rows and cols <= MAX_CHANNELS:
            return np.ascontiguousarray(a.T)
        raise DataError(f"{name}: cannot tell channels from samples in a {a.shape} array; give (channels, samples)")
    raise DataError(f"{name}: an audio array must be 1-D (samples) or 2-D (channels, samples), got shape {a.shape}")


def zero_length(name: str) -> DataError:
    return DataError(f"{name} is a zero-length clip (no samples); remove it from the dataset")


def check_samples(wave: np.ndarray, name: str, offset: int = 0) -> None:
    """Raise DataError for a zero-length clip or NaN/inf samples (``wave`` is (channels, samples), whose first
    sample is the clip's ``offset``-th: the message counts the non-finite samples of ``wave``)."""
    if wave.shape[-1] == 0:
        raise zero_length(name)
    finite = np.isfinite(wave)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(wave[tuple(bad)]) else "inf"
        raise DataError(
            f"{name} has {int((~finite).sum())} non-finite sample(s) ({kind} first, at sample {offset + int(bad[-1])}"
            f"{f' of channel {int(bad[0])}' if wave.shape[0] > 1 else ''}); fix or remove the clip"
        )


def mixdown(wave: np.ndarray, channel: Union[str, int], name: str) -> np.ndarray:
    """(channels, samples) → (samples,): the mean of the channels, or one channel (``channel=int``)."""
    if wave.shape[0] == 1:
        return wave[0]
    if channel == "mean":
        return wave.mean(axis=0)
    c = int(channel)
    if not -wave.shape[0] <= c < wave.shape[0]:
        raise DataError(f"{name} has {wave.shape[0]} channels; channel={c} does not exist")
    return wave[c]


def kernel_taps(src: int, out: int) -> int:
    """Taps of torchaudio's sinc kernel for the reduced rate pair ``src`` → ``out``: ``out`` phases of
    ``src`` + 2 × width taps, width = ceil(6 × src / (0.99 × min(src, out)))."""
    width = math.ceil(LOWPASS_WIDTH * src / (min(src, out) * ROLLOFF))
    return out * (src + 2 * width)


@functools.lru_cache(maxsize=64)
def resample_periods(orig: int, new: int) -> Tuple[int, int]:
    """(source frames, output samples) of one resampling period for ``orig`` Hz → ``new`` Hz: the pair reduced by
    their gcd, or, where its kernel would exceed :data:`KERNEL_TAPS` taps, the nearest ratio whose kernel does not
    (a warning says how far off it is). Resampling and the windows of long files (:mod:`.audio_window`) both use it."""
    orig, new = int(orig), int(new)
    g = math.gcd(orig, new)
    exact = (orig // g, new // g)
    if kernel_taps(*exact) <= KERNEL_TAPS:
        return exact
    target = Fraction(new, orig)
    for limit in (4096, 2048, 1024, 512, 256):  # the largest denominator whose kernel fits
        near = target.limit_denominator(limit) if new <= orig else 1 / Fraction(orig, new).limit_denominator(limit)
        if near.numerator >= 1 and kernel_taps(near.denominator, near.numerator) <= KERNEL_TAPS:
            break
    else:  # not reached for rates up to MAX_RATE: a last resort, refused
        raise DataError(f"cannot resample {orig} Hz audio to {new} Hz with a kernel of at most {KERNEL_TAPS} taps")
    off = abs(float(near / target) - 1.0)
    log.warning(
        "audio: resampling %d Hz to %d Hz exactly would build a kernel of %d taps; using the ratio %d/%d instead "
        "(durations and pitch off by %.1e)",
        orig,
        new,
        kernel_taps(*exact),
        near.numerator,
        near.denominator,
        off,
    )
    return near.denominator, near.numerator


def same_rate(orig: int, new: int) -> bool:
    """Whether ``orig`` Hz is read as ``new`` Hz unchanged: equal rates, or a near ratio of 1 (16,001 Hz to 16,000)."""
    src, out = resample_periods(orig, new) if orig != new else (1, 1)
    return src == out


@functools.lru_cache(maxsize=16)
def resampler(orig: int, new: int):
    """The cached ``torchaudio.transforms.Resample`` for one (orig, new) rate pair (kernel built once), at the
    period of :func:`resample_periods` (the same kernel as ``Resample(orig, new)`` wherever that one is small)."""
    import torchaudio  # lazy: torchaudio: slow to import, only for resampling/decoding it does

    return torchaudio.transforms.Resample(*resample_periods(int(orig), int(new)))


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample the last axis of ``wave`` from ``orig`` Hz to ``new`` Hz (identity when equal), in float32 whatever
    the autocast: a clip decoded during a mixed-precision run's evaluation is kept in the adapter's cache, and must be
    the clip any later read (a reloaded model's) decodes."""
    if orig == new or same_rate(orig, new):
        return wave
    with torch.no_grad(), torch.autocast(device_type=wave.device.type, enabled=False):
        return resampler(orig, new)(wave)

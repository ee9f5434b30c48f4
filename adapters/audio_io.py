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
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

from anycl.errors import DataError

MAX_CHANNELS = 32  # a 2-D array whose both axes are longer than this is not (channels, samples)


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
    """(frames, sample rate, channels) from a file's header, without decoding its samples."""
    with _open(source, name) as f:
        return int(f.frames), int(f.samplerate), int(f.channels)


def read_file(source: Union[str, bytes], name: str, start: int = 0, frames: int = -1) -> Tuple[np.ndarray, int]:
    """Decode a path or encoded bytes with soundfile → ((samples, channels) float32, sample rate).

    ``start`` / ``frames``: only that span of the file is decoded (seeking to ``start``; ``frames=-1``: to
    the end), so that a window of a long file costs the window, not the file."""
    with _open(source, name) as f:
        try:
            if start:
                f.seek(int(start))
            data = f.read(int(frames), dtype="float32", always_2d=True)
        except Exception as exc:  # a truncated or corrupt stream fails while decoding
            raise _undecodable(name, exc) from exc
        return data, int(f.samplerate)


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


def check_samples(wave: np.ndarray, name: str) -> None:
    """Raise DataError for a zero-length clip or NaN/inf samples (``wave`` is (channels, samples))."""
    if wave.shape[-1] == 0:
        raise DataError(f"{name} is a zero-length clip (no samples); remove it from the dataset")
    finite = np.isfinite(wave)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(wave[tuple(bad)]) else "inf"
        raise DataError(
            f"{name} has {int((~finite).sum())} non-finite sample(s) ({kind} first, at sample {int(bad[-1])}"
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


@functools.lru_cache(maxsize=32)
def resampler(orig: int, new: int):
    """The cached ``torchaudio.transforms.Resample`` for one (orig, new) rate pair (kernel built once)."""
    import torchaudio  # lazy: torchaudio: slow to import, only for resampling/decoding it does

    return torchaudio.transforms.Resample(int(orig), int(new))


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample the last axis of ``wave`` from ``orig`` Hz to ``new`` Hz (identity when equal), in float32 whatever
    the autocast: a clip decoded during a mixed-precision run's evaluation is kept in the adapter's cache, and must be
    the clip any later read (a reloaded model's) decodes."""
    if orig == new:
        return wave
    with torch.no_grad(), torch.autocast(device_type=wave.device.type, enabled=False):
        return resampler(orig, new)(wave)

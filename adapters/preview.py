"""How an item looks in the training report (:meth:`~adapters.base.Adapter.preview`): text as text, an image
as a small thumbnail, a clip as a short playable excerpt.

A :class:`Preview` says how to show an item, never which modality it came from: ``kind`` is ``"text"``,
``"picture"`` (``data`` holds PNG or JPEG bytes) or ``"sound"`` (``data`` holds a WAV file). The report embeds
the bytes in its page (data URIs), so it opens offline.
"""

from __future__ import annotations

import io
import os
import wave as wavfile
from typing import Any, NamedTuple

import numpy as np
import torch

THUMBNAIL_PX = 96  # the longer side of an image's thumbnail at most
THUMBNAIL_MIN_PX = 48  # smaller images are enlarged (whole pixels repeated) to at least this
EXCERPT_SECONDS = 2.0  # the length of a clip's excerpt
EXCERPT_MAX_RATE = 16000  # an excerpt's sample rate at most (keeps the page small)
TEXT_CHARS = 300  # a text preview's length at most


class Preview(NamedTuple):
    """What the report shows for one item: ``kind`` ("text", "picture", "sound"), ``text`` (the text, or a
    short description), ``mime`` and ``data`` (the bytes of an image or a sound)."""

    kind: str
    text: str = ""
    mime: str = ""
    data: bytes = b""


def item_name(item: Any) -> str:
    """A short name of an item: a file's last two path parts (its class folder and name), a text itself
    (cut at :data:`TEXT_CHARS`), a dict's ``path``, else its type and shape."""
    if isinstance(item, dict) and item.get("path"):
        item = item["path"]
    if isinstance(item, os.PathLike) or (isinstance(item, str) and os.path.isfile(item)):
        parts = os.path.normpath(os.fspath(item)).split(os.sep)
        return "/".join(parts[-2:])
    if isinstance(item, str):
        return item if len(item) <= TEXT_CHARS else item[: TEXT_CHARS - 1] + "…"
    shape = getattr(item, "shape", None)
    if shape is not None:
        return f"{type(item).__name__} {tuple(shape)}"
    if isinstance(item, (bytes, bytearray)):
        return f"{len(item)} bytes"
    return type(item).__name__


def text_preview(item: Any) -> Preview:
    return Preview("text", item_name(item))


def thumbnail(image: torch.Tensor, size: int = THUMBNAIL_PX) -> Preview:
    """A uint8 (C, H, W) image (C = 1 or 3) as a thumbnail whose longer side is at most ``size``: PNG for
    small images (sharp edges kept), JPEG for photographs."""
    from PIL import Image  # lazy: Pillow: only when a thumbnail is made

    arr = image.detach().cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else np.transpose(arr[:3], (1, 2, 0))
    im = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    small = max(im.size) <= size
    if not small:
        im.thumbnail((size, size))
    elif max(im.size) < THUMBNAIL_MIN_PX:  # a tiny image: each pixel repeated, so that it can be seen
        f = -(-THUMBNAIL_MIN_PX // max(im.size))
        im = im.resize((im.size[0] * f, im.size[1] * f), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    if small:
        im.save(buf, format="PNG")
        return Preview("picture", mime="image/png", data=buf.getvalue())
    im.save(buf, format="JPEG", quality=80)
    return Preview("picture", mime="image/jpeg", data=buf.getvalue())


def excerpt(wave: torch.Tensor, rate: int, seconds: float = EXCERPT_SECONDS) -> Preview:
    """A mono waveform (float, −1…1) as a WAV file of its middle ``seconds`` (16-bit, at most
    :data:`EXCERPT_MAX_RATE` Hz)."""
    x = wave.detach().float().reshape(-1).cpu()
    n = int(round(seconds * rate))
    if x.numel() > n:
        start = (x.numel() - n) // 2
        x = x[start : start + n]
    if rate > EXCERPT_MAX_RATE:
        step = -(-rate // EXCERPT_MAX_RATE)
        x = torch.nn.functional.avg_pool1d(x.view(1, 1, -1), step, step, ceil_mode=True).view(-1)
        rate = rate // step
    pcm = (x.clamp(-1, 1).numpy() * 32767).round().astype("<i2")
    buf = io.BytesIO()
    with wavfile.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return Preview("sound", mime="audio/wav", data=buf.getvalue())

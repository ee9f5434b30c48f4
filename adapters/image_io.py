"""Decoding images into one form: a ``uint8`` tensor (C, H, W) with C = 3 (RGB) or 1 (greyscale).

Accepted items: a path (str or ``os.PathLike``) to any file Pillow reads, raw file ``bytes``, a
``PIL.Image``, a numpy array (H, W) or (H, W, C), a torch tensor (C, H, W) or (H, W), and the dicts of
Hugging Face's ``Image`` feature (``{"bytes": ..., "path": ...}``, undecoded). Channels: 1 (grey),
2 (grey + alpha), 3 (RGB) or 4 (RGBA). Float arrays/tensors are read as values in [0, 1].

Conversion is the same whatever the source: palette images are expanded, greyscale is repeated to
RGB (or RGB reduced to luma with ITU-R 601-2 weights in ``mode="L"``), and transparent pixels are
composited over ``background`` (white by default) instead of showing whatever colour hides under
alpha = 0. Every failure raises :class:`~anycl.errors.DataError` naming the item.

A file or bytes are decoded only when their header's width × height is at most ``max_pixels`` (the image
adapter's option, default :data:`MAX_PIXELS`: 8192 × 8192): a small, highly compressible file can declare an
image whose pixels take gigabytes (a 410 KB PNG of 12000 × 12000 pixels decodes to 432 MB of RGB, and
Pillow's own bomb check only warns below 179 megapixels).
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

from anycl.errors import DataError

MAX_PIXELS = 8192 * 8192  # the largest width × height decoded from a file or bytes (image adapter option max_pixels)

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".ico",
    ".tga",
    ".jp2",
)


def describe(item: Any) -> str:
    """A short name of an item for error messages."""
    if isinstance(item, (str, os.PathLike)):
        return f"image file {os.fspath(item)!r}"
    if isinstance(item, dict):
        if item.get("path"):
            return f"image {item['path']!r}"
        return "image dict (bytes)"
    if isinstance(item, (bytes, bytearray)):
        return f"image bytes ({len(item)} bytes)"
    if torch.is_tensor(item) or isinstance(item, np.ndarray):
        return f"{type(item).__name__} of shape {tuple(item.shape)}"
    return f"{type(item).__name__} image"


def is_image_like(item: Any) -> bool:
    """Cheap type check (no decoding): could ``item`` be an image?"""
    from PIL import Image  # lazy: Pillow: only when an image is decoded

    if isinstance(item, (str, os.PathLike, bytes, bytearray, np.ndarray, Image.Image)) or torch.is_tensor(item):
        return True
    return isinstance(item, dict) and (bool(item.get("bytes")) or bool(item.get("path")))


def _too_large(name: str, pixels: Any, max_pixels: int) -> DataError:
    return DataError(
        f"{name} is {pixels} pixels, more than the image adapter's max_pixels={max_pixels:,}; shrink the image "
        f"or raise the limit (adapter_options={{'max_pixels': ...}})"
    )


def _open_pil(item: Any, name: str, max_pixels: int = MAX_PIXELS):
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow: only when an image is decoded

    try:
        if isinstance(item, (str, os.PathLike)):
            if os.path.exists(item) and not os.path.isfile(item):
                raise DataError(f"{name} is not a regular file (a folder, FIFO, socket or device); give an image file")
            img = Image.open(os.fspath(item))
        else:
            img = Image.open(io.BytesIO(bytes(item)))
        width, height = img.size  # from the header: nothing is decoded yet
        if width * height > max_pixels:
            raise _too_large(name, f"{width}x{height}", max_pixels)
        img.load()  # decode now: a truncated file fails here, not later in a worker
        return img
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{name} does not exist") from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit (2 x Image.MAX_IMAGE_PIXELS)
        raise _too_large(name, f"over Pillow's limit ({exc})", max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot decode {name}: {exc} (corrupt, truncated or not an image)") from None


def header_size(item: Any) -> Optional[Tuple[int, int]]:
    """(width, height) of an item without decoding it (a file's or bytes' header, an array's or tensor's shape);
    None when it cannot be told cheaply (an unreadable file: training's checks name it)."""
    from PIL import Image  # lazy: Pillow: only when an image is read

    if isinstance(item, dict):
        item = item.get("bytes") or item.get("path")
    if isinstance(item, Image.Image):
        return item.size
    if isinstance(item, np.ndarray) and item.ndim in (2, 3):
        return int(item.shape[1]), int(item.shape[0])
    if torch.is_tensor(item) and item.dim() in (2, 3):
        return int(item.shape[-1]), int(item.shape[-2])
    if isinstance(item, (str, os.PathLike, bytes, bytearray)):
        try:
            src = os.fspath(item) if isinstance(item, (str, os.PathLike)) else io.BytesIO(bytes(item))
            with Image.open(src) as img:
                return img.size
        except Exception:  # noqa: BLE001 - not readable: no size (the scan before training names the file)
            return None
    return None


SCAN_DECODE_PIXELS = 512 * 512  # images up to this size are decoded whole by scan (a few ms); larger ones checked


def scan(item: Any, max_pixels: int = MAX_PIXELS) -> None:
    """A cheap check that :func:`decode` can read a file, bytes or an undecoded Hugging Face ``Image`` dict (other
    items are decoded already: nothing to do); a DataError naming the item where it cannot. The header is read (its
    format, its size against ``max_pixels``); an image of at most :data:`SCAN_DECODE_PIXELS` is decoded whole, a
    larger PNG has its chunks' checksums verified, a larger JPEG must end with its end-of-image marker (else it is
    decoded, to be sure), and a larger image of another format is decoded."""
    name = describe(item)
    if isinstance(item, dict):
        item = item.get("bytes") or item.get("path")
    if not isinstance(item, (str, os.PathLike, bytes, bytearray)):
        return
    from PIL import Image  # lazy: Pillow: only when an image is read

    try:
        if isinstance(item, (str, os.PathLike)) and os.path.exists(item) and not os.path.isfile(item):
            raise DataError(f"{name} is not a regular file (a folder, FIFO, socket or device); give an image file")
        with Image.open(os.fspath(item) if isinstance(item, (str, os.PathLike)) else io.BytesIO(bytes(item))) as img:
            width, height = img.size
            fmt = img.format
        if width * height > max_pixels:
            raise _too_large(name, f"{width}x{height}", max_pixels)
        if width * height > SCAN_DECODE_PIXELS and fmt == "PNG":
            with Image.open(
                os.fspath(item) if isinstance(item, (str, os.PathLike)) else io.BytesIO(bytes(item))
            ) as img:
                img.verify()
            return
        if width * height > SCAN_DECODE_PIXELS and fmt == "JPEG" and _jpeg_ends(item):
            return
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{name} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on a bad header is an unreadable file
        raise DataError(f"cannot decode {name}: {exc} (corrupt, truncated or not an image)") from None
    _open_pil(item, name, max_pixels).close()  # small enough to decode, or a format with no cheaper check


def _jpeg_ends(item: Any) -> bool:
    """Whether a JPEG file or bytes ends with the end-of-image marker (FF D9; trailing zero bytes allowed)."""
    if isinstance(item, (bytes, bytearray)):
        tail = bytes(item[-64:])
    else:
        with open(item, "rb") as f:
            f.seek(max(0, os.path.getsize(item) - 64))
            tail = f.read()
    return tail.rstrip(b"\x00").endswith(b"\xff\xd9")


def _pil_to_array(img) -> np.ndarray:
    """PIL image → (H, W, C) uint8 array, C in 1..4 (alpha kept for compositing)."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if mode == "F" else (65535.0 if arr.max(initial=0) > 255 else 255.0)
        return (np.clip(arr / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[..., None]
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV …
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def _to_uint8(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t
    if t.dtype == torch.bool:
        return t.to(torch.uint8) * 255
    if t.is_floating_point():
        if not torch.isfinite(t).all():
            raise DataError(f"{name} holds NaN or infinite values")
        return (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    if t.dtype in (torch.uint16, torch.int32, torch.int64, torch.int16) and int(t.max()) > 255:
        return (t.double() / 65535.0 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return t.clamp(0, 255).to(torch.uint8)


def _check_chw(t: torch.Tensor, name: str, layout: str) -> None:
    if t.shape[0] not in (1, 2, 3, 4):
        raise DataError(
            f"{name} has {t.shape[0]} channels; images need 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) "
            f"channels, {layout}"
        )
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise DataError(f"{name} is empty (zero height or width)")


def decode(
    item: Any, mode: str = "RGB", background: Sequence[int] = (255, 255, 255), max_pixels: int = MAX_PIXELS
) -> torch.Tensor:
    """Decode one item into a ``uint8`` tensor (3, H, W) for ``mode="RGB"`` or (1, H, W) for ``"L"``;
    a file or bytes of more than ``max_pixels`` pixels (by its header) is a DataError, never decoded."""
    from PIL import Image  # lazy: Pillow: only when an image is decoded

    name = describe(item)
    if isinstance(item, dict) and not isinstance(item, np.ndarray):
        if item.get("bytes"):
            item = item["bytes"]
        elif item.get("path"):
            item = item["path"]
        else:
            raise DataError(f"{name} has neither 'bytes' nor 'path' (an undecoded Hugging Face Image feature has one)")
    if isinstance(item, (str, os.PathLike, bytes, bytearray)):
        item = _open_pil(item, name, max_pixels)
    if isinstance(item, Image.Image):
        if item.width == 0 or item.height == 0:
            raise DataError(f"{name} is empty ({item.width}x{item.height} pixels)")
        t = torch.from_numpy(np.array(_pil_to_array(item), copy=True)).permute(2, 0, 1)
    elif isinstance(item, np.ndarray):
        if item.ndim == 2:
            item = item[..., None]
        if item.ndim != 3:
            raise DataError(f"{name}: numpy images must be (H, W) or (H, W, C), got {item.ndim} dimensions")
        if item.dtype == object or not (np.issubdtype(item.dtype, np.number) or item.dtype == bool):
            raise DataError(f"{name} has dtype {item.dtype}; images need numbers")
        t = torch.from_numpy(np.array(item, copy=True)).permute(2, 0, 1)
        _check_chw(t, name, "channels last for numpy arrays (H, W, C)")
        t = _to_uint8(t, name)
    elif torch.is_tensor(item):
        t = item.detach().cpu()
        if t.dim() == 2:
            t = t.unsqueeze(0)
        if t.dim() != 3:
            raise DataError(
                f"{name}: image tensors must be (C, H, W) or (H, W), got {t.dim()} dimensions"
                + (" (a batch? pass the images as a list)" if t.dim() == 4 else "")
            )
        _check_chw(t, name, "channels first for tensors (C, H, W)")
        t = _to_uint8(t, name)
    else:
        raise DataError(f"cannot make an image from a {type(item).__name__}; give a path, PIL image, array or tensor")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise DataError(f"{name} is empty (zero height or width)")
    return convert_channels(t, mode, background)


def convert_channels(t: torch.Tensor, mode: str, background: Sequence[int]) -> torch.Tensor:
    """uint8 (C, H, W), C in 1..4 → (3, H, W) for ``"RGB"`` or (1, H, W) for ``"L"``; alpha composited."""
    c = t.shape[0]
    if c in (2, 4):
        colour, alpha = t[:-1].float(), t[-1:].float() / 255.0
        bg = torch.tensor(list(background), dtype=torch.float32)
        bg = bg[:1] if c == 2 else bg
        if c == 2 and len(background) == 3:  # grey background for grey images: its luma
            bg = (
                (torch.tensor(list(background), dtype=torch.float32) * torch.tensor([0.299, 0.587, 0.114]))
                .sum()
                .view(1)
            )
        t = (colour * alpha + bg.view(-1, 1, 1) * (1 - alpha) + 0.5).clamp(0, 255).to(torch.uint8)
    if mode == "RGB":
        return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t.contiguous()
    if mode == "L":
        if t.shape[0] == 3:
            w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            t = ((t.float() * w).sum(0, keepdim=True) + 0.5).clamp(0, 255).to(torch.uint8)
        return t.contiguous()
    raise DataError(f"unknown image mode {mode!r}; use 'RGB' or 'L'")

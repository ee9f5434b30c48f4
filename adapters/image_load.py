"""One image item in: :meth:`ImageAdapter.load <anycl.adapters.image.ImageAdapter.load>` decodes it
(:func:`~anycl.adapters.image_io.decode`) to uint8 (C, H, W), keeping decoded files in memory within ``cache_mb``
MiB (:mod:`.item_cache`) and warning once about images smaller than the crop; ``key``, ``scan`` (a file's header
read before training), ``data_options`` (``preset="small"`` for small images, told by their headers) and
``preview`` read one item too.

:class:`ImageLoading` is a base class of :class:`~anycl.adapters.image.ImageAdapter`: its methods are the adapter's
and read the options the adapter's ``__init__`` sets.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

import torch

from .base import item_key
from .image_augment import PRESETS
from .image_io import decode, describe, header_size, scan
from .item_cache import MB, DecodedCache
from .preview import Preview, thumbnail

log = logging.getLogger("anycl")

SMALL_IMAGE = 64  # images of at most this many px on their longer side get preset="small" when none is given


class ImageLoading:
    """``load`` and its cache of decoded images, ``key``, ``scan``, ``data_options`` and ``preview`` (a base class
    of the image adapter)."""

    if TYPE_CHECKING:  # set by ImageAdapter.__init__ / _set_views
        options: Dict[str, Any]
        mode: str
        background: Tuple[int, ...]
        max_pixels: int
        size: int
        _cache: DecodedCache
        _warned_small: bool

    def key(self, item: Any) -> Any:
        from PIL import Image  # lazy: Pillow: only when an image is decoded

        if isinstance(item, Image.Image):
            return ("pil", item.mode, item.size, hashlib.blake2b(item.tobytes(), digest_size=16).digest())
        return item_key(item)

    def scan(self, item: Any) -> None:
        """The file's header (and checksums, or a decode of a small image) read before training: a DataError
        naming an unreadable file (:func:`~anycl.adapters.image_io.scan`)."""
        scan(item, self.max_pixels)

    @classmethod
    def data_options(cls, items: List[Any], options: Dict[str, Any]) -> Dict[str, Any]:
        """``preset="small"`` when the user gave no ``preset`` or ``size`` and every sampled image is at most
        :data:`SMALL_IMAGE` px on its longer side (told by their headers, nothing decoded), said in the log."""
        if "preset" in options or "size" in options:
            return {}
        sizes = [s for s in (header_size(x) for x in items) if s is not None]
        if not sizes or max(max(s) for s in sizes) > SMALL_IMAGE:
            return {}
        width, height = max(s[0] for s in sizes), max(s[1] for s in sizes)
        log.info(
            "the images are small (the %d sampled are at most %dx%d px): using preset='small' (%d px crops, the small "
            "CNN) instead of the 224 px ImageNet recipe; give adapter_options={'preset': 'simclr'} or size= to choose",
            len(sizes),
            width,
            height,
            PRESETS["small"].size,
        )
        return {"preset": "small"}

    def load(self, item: Any) -> torch.Tensor:
        """Decode to uint8 (C, H, W); raises DataError naming the item. Warns once about small images.

        A file's image is decoded once and kept (option ``cache_mb``): the tensor returned is shared, not to be
        written to in place."""
        key = self._cache.key(item)
        kept = self._cache.get(key)
        if kept is not None:
            return kept
        img = self._cache.keep(key, decode(item, self.mode, self.background, self.max_pixels))
        if not self._warned_small and min(img.shape[1:]) < self.size:
            self._warned_small = True
            small = self.options["preset"] != "small" and max(img.shape[1:]) <= SMALL_IMAGE
            log.warning(
                "%s is %dx%d pixels, smaller than the %d px crop; such images are upsampled (%sset size= to "
                "change the crop; this is said once)",
                describe(item),
                img.shape[2],
                img.shape[1],
                self.size,
                "preset='small' is the recipe for images of 64 px or less; " if small else "",
            )
        return img

    def preview(self, item: Any) -> Preview:
        """A thumbnail of the whole image (not cropped) for the training report."""
        return thumbnail(decode(item, self.mode, self.background))

    def __getstate__(self):  # a copy (a DataLoader worker's) starts with an empty cache of its own
        state = dict(self.__dict__)
        state["_cache"] = DecodedCache(self._cache.budget / MB)
        return state

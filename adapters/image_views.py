"""An image's views and their batch: the random training view (crop and flip; with ``augment_on="item"`` every
op of :mod:`.image_augment`), the deterministic evaluation view (resize + centre crop), the local views and
multi-crop, another adapter's view at this adapter's crop (distillation), the batch collated as uint8 and
``prepare``'s float normalisation on the device (with ``augment_on="batch"``, after the colour ops of
:mod:`.image_batched`).

:class:`ImageViews` is a base class of :class:`~anycl.adapters.image.ImageAdapter`: its methods are the adapter's
and read the options the adapter's ``__init__`` sets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import torch

from anycl.errors import DataError

from .image_augment import AugmentConfig, apply_seeded, eval_transform, train_transform
from .image_batched import photometric


class ImageViews:
    """The views of one image and the batch they make (a base class of the image adapter)."""

    if TYPE_CHECKING:  # set by ImageAdapter.__init__ / attach, and by _set_views
        options: Dict[str, Any]
        channels: int
        mean: List[float]
        std: List[float]
        local_crops: int
        local_scale: Tuple[float, ...]
        augment_on: str
        aug: AugmentConfig
        size: int
        local_size: int
        _train_tf: Callable
        _eval_tf: Callable
        _local_tf: Callable

    def _set_views(self, aug) -> None:
        """The recipe and what follows from it: crop size, local-view size, the view transforms."""
        self.aug, self.size = aug, aug.size
        self.local_size = int(self.options["local_size"] or max(8, round(self.size * 96 / 224)))
        batched = self.augment_on == "batch"
        self._train_tf = train_transform(self.aug, self.channels, geometry_only=batched)
        self._eval_tf = eval_transform(self.aug)
        self._local_tf = train_transform(
            self.aug, self.channels, size=self.local_size, scale=self.local_scale, geometry_only=batched
        )

    def augment(self, item: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view, uint8 (C, size, size); deterministic given the generator's state.

        With ``augment_on="batch"`` only the crop and flip happen here; ``prepare`` adds the colour ops.
        """
        return apply_seeded(self._train_tf, item, generator)

    def eval_view(self, item: torch.Tensor) -> torch.Tensor:
        """Resize the short side to ``size × eval_resize`` and centre-crop ``size`` (no randomness)."""
        return self._eval_tf(item)

    def from_view(self, view: torch.Tensor, source: Any) -> torch.Tensor:
        """Another image adapter's view (uint8, or float in [0, 1] after batched colour ops) at this adapter's
        crop (resized, antialiased) and channels."""
        if view.shape[0] != self.channels:
            if view.shape[0] == 1:
                view = view.expand(3, -1, -1)
            else:
                grey = view.float().mean(0, keepdim=True)
                view = grey.round().byte() if view.dtype == torch.uint8 else grey
        if tuple(view.shape[-2:]) != (self.size, self.size):
            x = torch.nn.functional.interpolate(
                view[None].float(), size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )[0]
            view = x.round().clamp(0, 255).to(torch.uint8) if view.dtype == torch.uint8 else x.clamp(0, 1)
        return view

    def batch_views(self, batch: torch.Tensor, generator: Optional[torch.Generator]) -> Optional[List[torch.Tensor]]:
        """With ``augment_on="batch"``: the views in [0, 1] after the colour ops ``prepare`` draws (same numbers)."""
        if self.augment_on != "batch":
            return None
        x = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch
        return list(photometric(x, self.aug, generator))

    def example_views(self) -> List[torch.Tensor]:
        """Two seeded random uint8 images of the adapter's channels, centre-cropped as ``encode`` does (to trace an
        ONNX export with, and to measure a step's memory: :mod:`anycl.fitting.memory`)."""
        g = torch.Generator().manual_seed(0)
        size = int(self.size)
        return [
            self.eval_view(torch.randint(0, 256, (self.channels, size + 8, size + 12), generator=g, dtype=torch.uint8))
            for _ in range(2)
        ]

    def multi_crop(self, item: torch.Tensor, generator: torch.Generator, global_crops: int = 2) -> List[torch.Tensor]:
        """Multi-crop views (Caron et al. 2020): ``global_crops`` views at ``size`` then ``local_crops``
        views at ``local_size`` with crop scale ``local_scale``. For custom loops over several views;
        with ``augment_on="batch"`` these are crop + flip only: collate each group of equal size and pass
        it through ``prepare(batch, train=True, generator=g)`` for the colour ops."""
        views = [apply_seeded(self._train_tf, item, generator) for _ in range(global_crops)]
        views += [apply_seeded(self._local_tf, item, generator) for _ in range(self.local_crops)]
        return views

    def local_view(self, item: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One local view (multi-view training, :mod:`anycl.data.views`): a crop of scale ``local_scale``
        resized to ``local_size`` (crop and flip only with ``augment_on="batch"``; ``prepare`` adds colour)."""
        return apply_seeded(self._local_tf, item, generator)

    def collate(self, items: List[torch.Tensor]) -> torch.Tensor:
        shapes = {tuple(x.shape) for x in items}
        if len(shapes) > 1:
            raise DataError(f"image views of different shapes in one batch: {sorted(shapes)}")
        return torch.stack(items)

    def prepare(self, batch: torch.Tensor, train: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """uint8 (B, C, H, W) on the device → float normalised by mean/std (+ batched colour ops when
        training with ``augment_on="batch"``, drawn from ``generator``)."""
        x = batch.float() if batch.dtype == torch.uint8 else batch
        if batch.dtype == torch.uint8:
            x = x / 255.0
        if train and self.augment_on == "batch":
            x = photometric(x, self.aug, generator)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

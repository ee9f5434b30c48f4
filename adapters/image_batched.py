"""Photometric augmentations for a whole batch at once, on the training device.

The same distribution as torchvision's per-image ``ColorJitter`` (brightness, contrast, saturation,
hue in a random order per image), ``RandomGrayscale``, ``GaussianBlur`` (sigma drawn per image) and
``RandomSolarize`` — but each op runs once over the (B, C, H, W) batch with per-image parameters, so
a batch of 256 small images costs a few tensor ops instead of 256 × (6 Python-level transforms).
All randomness comes from the ``generator`` argument (on the batch's device).

Input and output: float (B, C, H, W) with values in [0, 1]; C = 3 (RGB) or 1 (grey: saturation,
hue and greyscale do nothing, as in torchvision).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .image_augment import AugmentConfig

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _rand(n: int, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(n, device=x.device, generator=generator, dtype=torch.float32)


def _factor(u: torch.Tensor, amount: float) -> torch.Tensor:
    """Uniform in [max(0, 1 − amount), 1 + amount] from uniforms ``u``."""
    lo = max(0.0, 1.0 - amount)
    return lo + u * ((1.0 + amount) - lo)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # element-wise over the three planes: no strided reduction
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Each channel n (R 5, G 3, B 1) is ``v − v·s·clamp(min(k, 4 − k), 0, 1)`` with ``k = (n + 6h) mod 6``: the
    six-sector table (torchvision's) in closed form, without building the 18 candidate planes it picks from."""
    h, s, v = x.unbind(1)
    h6, vs = h * 6.0, v * s

    def channel(n: float) -> torch.Tensor:
        k = (h6 + n) % 6.0
        return v - vs * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv(x)
    h = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], 1))


def _jitter_op(op: int, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """One ColorJitter op on a sub-batch with per-image factors ``f`` (B,)."""
    view = (-1, 1, 1, 1)
    if op == 0:
        return (x * f.view(view)).clamp(0, 1)
    if op == 1:
        grey = grayscale(x) if x.shape[1] == 3 else x
        return _blend(x, grey.mean((1, 2, 3), keepdim=True), f.view(view))
    if op == 2:
        return _blend(x, grayscale(x), f.view(view))
    return adjust_hue(x, f)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Per-image ColorJitter applied with probability ``cfg.jitter_p``, ops in a random order per image.

    Each op runs only on the images that apply it at that position of their order (gather → op →
    scatter), so every image pays for each op once.
    """
    n = x.shape[0]
    bri, con, sat, hue = cfg.jitter
    if x.shape[1] == 1:
        sat, hue = 0.0, 0.0
    apply = _rand(n, x, generator) < cfg.jitter_p
    u = _rand(4 * n, x, generator).view(4, n)
    order = torch.rand(n, 4, device=x.device, generator=generator).argsort(1)  # a random permutation per image
    factors = [_factor(u[0], bri), _factor(u[1], con), _factor(u[2], sat), (u[3] * 2 - 1) * hue]
    active = [bri > 0, con > 0, sat > 0, hue > 0]
    out = x.clone()
    for position in range(4):
        for op in range(4):
            if not active[op]:
                continue
            idx = ((order[:, position] == op) & apply).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            out[idx] = _jitter_op(op, out[idx], factors[op][idx])
    return out


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable blur with a per-image sigma (B,), reflect padding, odd ``kernel``."""
    b, c, h, w = x.shape
    half = kernel // 2
    pos = torch.arange(kernel, device=x.device, dtype=x.dtype) - half
    k = torch.exp(-0.5 * (pos.view(1, -1) / sigma.view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (half, half, half, half), mode="reflect" if min(h, w) > half else "replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, kernel, 1), groups=b * c)
    return y.view(b, c, h, w)


def photometric(x: torch.Tensor, cfg: AugmentConfig, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Colour jitter → random greyscale → Gaussian blur → solarisation, per image, over a batch."""
    n, c = x.shape[0], x.shape[1]
    view = (-1, 1, 1, 1)
    if cfg.jitter_p > 0 and any(cfg.jitter):
        x = color_jitter(x, cfg, generator)
    if cfg.grayscale_p > 0 and c == 3:
        sel = _rand(n, x, generator) < cfg.grayscale_p
        x = torch.where(sel.view(view), grayscale(x).expand(-1, 3, -1, -1), x)
    if cfg.blur_p > 0:
        sel = _rand(n, x, generator) < cfg.blur_p
        lo, hi = cfg.blur_sigma
        sigma = lo + _rand(n, x, generator) * (hi - lo)
        size = x.shape[-1]
        k = cfg.blur_kernel or max(3, int(0.1 * size) // 2 * 2 + 1)
        idx = sel.nonzero().squeeze(1)
        if idx.numel():
            x = x.clone()
            x[idx] = gaussian_blur(x[idx], k, sigma[idx])
    if cfg.solarize_p > 0:
        sel = _rand(n, x, generator) < cfg.solarize_p
        thr = cfg.solarize_threshold
        x = torch.where(sel.view(view) & (x >= thr), 1.0 - x, x)
    return x

"""Augmentation of whole batches on tensors: one affine warp, brightness/contrast, random erasing.

No per-sample Python: every random draw is a tensor of shape (B,), so the cost is a few batched ops.
(torchvision's v2 transforms draw one set of parameters per call, i.e. the same for a whole batch.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deep_emotion.training.recipe import AugmentConfig


def _uniform(b: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(b, generator=g, device=device) * (hi - lo) + lo


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """x: (B, 1, H, W) in [0, 1] -> augmented copy, same shape. `g` makes it reproducible."""
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g, dev) * (math.pi / 180)
    scale = 1.0 / _uniform(b, 1 - cfg.scale, 1 + cfg.scale, g, dev)  # grid scale is the inverse zoom
    flip = (
        torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b, device=dev)
    )
    tx, ty = (_uniform(b, -2 * cfg.translate, 2 * cfg.translate, g, dev) for _ in range(2))  # grid spans [-1, 1]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)  # (B, 1, H, W)

    if cfg.contrast or cfg.brightness:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, g, dev).view(b, 1, 1, 1)
        br = _uniform(b, -cfg.brightness, cfg.brightness, g, dev).view(b, 1, 1, 1)
        x = ((x - mean) * c + mean + br).clamp(0, 1)

    if cfg.erase_prob > 0:
        h, w = x.shape[-2:]
        area = _uniform(b, *cfg.erase_area, g, dev) * h * w
        aspect = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), g, dev))
        eh = (area * aspect).sqrt().clamp(1, h).floor()
        ew = (area / aspect).sqrt().clamp(1, w).floor()
        y0 = (torch.rand(b, generator=g, device=dev) * (h - eh + 1)).floor()
        x0 = (torch.rand(b, generator=g, device=dev) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = (
            (rows >= y0.view(b, 1, 1))
            & (rows < (y0 + eh).view(b, 1, 1))
            & (cols >= x0.view(b, 1, 1))
            & (cols < (x0 + ew).view(b, 1, 1))
        )
        on = (torch.rand(b, generator=g, device=dev) < cfg.erase_prob).view(b, 1, 1)
        noise = torch.rand(x.shape, generator=g, device=dev)
        x = torch.where((box & on).unsqueeze(1), noise, x)
    return x

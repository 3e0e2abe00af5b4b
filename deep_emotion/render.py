"""Pictures of faces and maps (PIL images): kept apart from the computing in explain.py."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def _as_array(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def grey_image(face: np.ndarray | torch.Tensor, scale: int = 4) -> Image.Image:
    """A grey face, uint8 (H, W) or float in [0, 1], enlarged `scale` times (nearest, to keep pixels visible)."""
    a = _as_array(face)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    im = Image.fromarray(a, "L")
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def colorize(values: np.ndarray | torch.Tensor, vmin: float | None = None, vmax: float | None = None,
             cmap: str = "inferno") -> np.ndarray:
    """Float map -> uint8 RGB (H, W, 3) through a matplotlib colour map."""
    import matplotlib

    a = _as_array(values).astype(np.float64)
    lo = float(a.min()) if vmin is None else vmin
    hi = float(a.max()) if vmax is None else vmax
    norm = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return (matplotlib.colormaps[cmap](np.clip(norm, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(face: np.ndarray | torch.Tensor, values: np.ndarray | torch.Tensor, alpha: float = 0.55,
            scale: int = 4, vmin: float | None = None, vmax: float | None = None, cmap: str = "inferno") -> Image.Image:
    """The map in colour over the grey face, enlarged `scale` times (map bilinear, face nearest)."""
    base = np.asarray(grey_image(face, scale).convert("RGB"), dtype=np.float64)
    colour = Image.fromarray(colorize(values, vmin, vmax, cmap)).resize(
        (base.shape[1], base.shape[0]), Image.Resampling.BILINEAR)
    mixed = (1 - alpha) * base + alpha * np.asarray(colour, dtype=np.float64)
    return Image.fromarray(mixed.round().astype(np.uint8))


def draw_boxes(image: Image.Image, boxes: list[tuple[float, float, float, float]], selected: int | None = None) -> Image.Image:
    """The photo with every face box drawn and numbered from 1; the selected one in another colour."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        colour = (255, 200, 0) if i == selected else (0, 220, 120)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        draw.text((x0 + width + 2, y0 + width + 2), str(i + 1), fill=colour)
    return out


def signed_limits(values: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Symmetric colour limits for maps with both signs (Captum, probability drop): 0 is the middle colour."""
    a = float(np.abs(_as_array(values)).max()) or 1e-9
    return -a, a


def map_overlay(face: np.ndarray, values: np.ndarray, signed: bool, scale: int = 4) -> Image.Image:
    """Overlay with the project's colour conventions: counts in 'inferno' from 0; signed maps in 'RdBu_r'
    centred on 0 (red: occluding this region lowers the predicted class's probability)."""
    if signed:
        lo, hi = signed_limits(values)
        return overlay(face, values, scale=scale, vmin=lo, vmax=hi, cmap="RdBu_r")
    return overlay(face, values, scale=scale, vmin=0.0, vmax=max(float(np.max(values)), 1e-9), cmap="inferno")


def panel(face, views: list, mode: str, scale: int = 4) -> Image.Image:
    """One row per model: face crop, STN view, paper map, Captum map; the model and its top class above."""
    tiles = 4
    side = 48 * scale
    header = 18
    out = Image.new("RGB", (tiles * side, len(views) * (side + header)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for row, v in enumerate(views):
        y = row * (side + header)
        draw.text((4, y + 3), f"{v.model}: {v.top} ({v.probabilities[v.top]:.2f})   [face | STN view | paper {mode} | Captum]",
                  fill=(0, 0, 0))
        images = [grey_image(face.crop, scale), grey_image(v.stn_view, scale),
                  map_overlay(face.crop, v.paper_map, signed=(mode == "drop"), scale=scale)]
        if v.captum_map is not None:
            images.append(map_overlay(face.crop, v.captum_map, signed=True, scale=scale))
        for i, im in enumerate(images):
            out.paste(im.convert("RGB"), (i * side, y + header))
    return out

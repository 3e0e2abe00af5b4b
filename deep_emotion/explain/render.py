"""Pictures of faces and maps (PIL images): kept apart from the computing in explain.py."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def _as_array(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def grey_image(face: np.ndarray | torch.Tensor, scale: int = 4) -> Image.Image:
    """A grey face, uint8 (H, W) or float in [0, 1], enlarged `scale` times (nearest, to keep pixels visible)."""
    a = _as_array(face)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    im = Image.fromarray(a, "L")
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def colorize(
    values: np.ndarray | torch.Tensor, vmin: float | None = None, vmax: float | None = None, cmap: str = "inferno"
) -> np.ndarray:
    """Float map -> uint8 RGB (H, W, 3) through a matplotlib colour map."""
    import matplotlib

    a = _as_array(values).astype(np.float64)
    lo = float(a.min()) if vmin is None else vmin
    hi = float(a.max()) if vmax is None else vmax
    norm = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return (matplotlib.colormaps[cmap](np.clip(norm, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(
    face: np.ndarray | torch.Tensor,
    values: np.ndarray | torch.Tensor,
    alpha: float = 0.55,
    scale: int = 4,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "inferno",
) -> Image.Image:
    """The map in colour over the grey face, enlarged `scale` times (map bilinear, face nearest)."""
    base = np.asarray(grey_image(face, scale).convert("RGB"), dtype=np.float64)
    colour = Image.fromarray(colorize(values, vmin, vmax, cmap)).resize(
        (base.shape[1], base.shape[0]), Image.Resampling.BILINEAR
    )
    mixed = (1 - alpha) * base + alpha * np.asarray(colour, dtype=np.float64)
    return Image.fromarray(mixed.round().astype(np.uint8))


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at `size` pixels (no system fonts needed); loaded once per size."""
    return ImageFont.load_default(size=size)


def draw_boxes(
    image: Image.Image,
    boxes: list[tuple[float, float, float, float]],
    selected: int | None = None,
    labels: list[str] | None = None,
    shown_width: int | None = None,
    numbers: list[int] | None = None,
) -> Image.Image:
    """The photo with every face box drawn and numbered from 1 (or with `numbers`, e.g. a tracker's ids), with
    `labels[i]` (e.g. the top emotion) after the number; the selected box in another colour. Text is sized to stay
    legible (about 14 px) when the picture is
    shown `shown_width` pixels wide (default: its own width)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    k = out.width / max(1, shown_width or min(out.width, 700))  # picture pixels per screen pixel
    width = max(2, round(2 * k))
    text = font(max(10, round(14 * k)))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        colour = (255, 200, 0) if i == selected else (0, 220, 120)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        label = f"{numbers[i] if numbers else i + 1}" + (
            f" {labels[i]}" if labels and i < len(labels) and labels[i] else ""
        )
        left, t, r, b = draw.textbbox((0, 0), label, font=text)
        pad = max(2, round(3 * k))
        w, h = (r - left) + 2 * pad, (b - t) + 2 * pad
        lx = min(max(0, x0), max(0, out.width - w))
        ly = y0 - h if y0 - h >= 0 else min(y1, out.height - h)  # above the box, else below it, inside the photo
        draw.rectangle((lx, ly, lx + w, ly + h), fill=colour)
        draw.text((lx + pad - left, ly + pad - t), label, fill=(0, 0, 0), font=text)
    return out


def signed_limits(values: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Symmetric colour limits for maps with both signs (Captum, probability drop): 0 is the middle colour."""
    a = float(np.abs(_as_array(values)).max()) or 1e-9
    return -a, a


def map_scale(values: np.ndarray, signed: bool, limit: float | None = None) -> tuple[float, float, str]:
    """(vmin, vmax, colour map) of the project's conventions: signed maps in 'RdBu_r' centred on 0 (red: evidence
    for the class), unsigned ones in 'inferno' from 0 to their maximum. `limit`: a shared largest magnitude
    (one colour bar for several maps) instead of this map's own."""
    top = float(np.abs(values).max()) if limit is None else float(limit)
    top = max(top, 1e-9)
    return (-top, top, "RdBu_r") if signed else (0.0, top, "inferno")


def map_overlay(
    face: np.ndarray, values: np.ndarray, signed: bool, scale: int = 4, limit: float | None = None
) -> Image.Image:
    """The map over the face in the project's colours (`map_scale`)."""
    lo, hi, cmap = map_scale(values, signed, limit)
    return overlay(face, values, scale=scale, vmin=lo, vmax=hi, cmap=cmap)


def map_image(face: np.ndarray, m, scale: int = 4, limit: float | None = None) -> Image.Image:
    """A `explainers.Map` over the face: the STN's sampled area as its outline, the others as colour overlays.
    `face` may be larger than the map (the face's square of the photo at a higher resolution): the map is
    upsampled onto it."""
    if m.outline is not None:
        out = grey_image(face, scale).convert("RGB")
        draw = ImageDraw.Draw(out)
        k = out.width / m.values.shape[1]
        pts = [(float(x) * k, float(y) * k) for x, y in m.outline]
        line = max(2, round(out.width / 100))
        draw.polygon(pts, outline=(255, 200, 0), width=line)
        draw.line([pts[0], pts[1]], fill=(255, 60, 60), width=line)  # the view's top edge
        return out
    return map_overlay(face, m.values, m.signed, scale, limit)


def colour_bar(
    vmin: float, vmax: float, cmap: str, label: str, width: int, height: int = 12, text_size: int = 13
) -> Image.Image:
    """A horizontal colour bar with its ends (and 0 for centred scales) written under it, then `label`."""
    ramp = colorize(np.tile(np.linspace(vmin, vmax, width), (height, 1)), vmin, vmax, cmap)
    text = font(text_size)
    out = Image.new("RGB", (width, height + 2 * text_size + 8), (255, 255, 255))
    out.paste(Image.fromarray(ramp), (0, 0))
    draw = ImageDraw.Draw(out)
    ticks = [(0, vmin, "la"), (width, vmax, "ra")] + ([(width // 2, 0.0, "ma")] if vmin < 0 < vmax else [])
    for x, v, anchor in ticks:
        draw.text((x, height + 2), f"{v:.3g}" if abs(v) >= 1e-6 else "0", fill=(0, 0, 0), font=text, anchor=anchor)
    draw.text(
        (width // 2, height + text_size + 5),
        fit_text(draw, label, text, width),
        fill=(60, 60, 60),
        font=text,
        anchor="ma",
    )
    return out


def map_tile(
    face: np.ndarray, m, title: str, scale: int = 4, text_size: int = 14, limit: float | None = None
) -> Image.Image:
    """Title, the map over the face and its colour bar, as one picture (`limit`: a colour scale shared with
    other tiles)."""
    image = map_image(face, m, scale, limit)
    side = image.width
    head = font(text_size)
    if m.outline is not None:
        bar = Image.new("RGB", (side, 2 * text_size + 8), (255, 255, 255))
        small = font(text_size - 1)
        d = ImageDraw.Draw(bar)
        d.text(
            (side // 2, 4),
            fit_text(d, "yellow: sampled area, red: its top", small, side),
            fill=(60, 60, 60),
            font=small,
            anchor="ma",
        )
    else:
        bar = colour_bar(*map_scale(m.values, m.signed, limit), m.unit, side, text_size=text_size - 1)
    out = Image.new("RGB", (side, text_size + 6 + side + bar.height), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.text((side // 2, 2), fit_text(draw, title, head, side), fill=(0, 0, 0), font=head, anchor="ma")
    out.paste(image, (0, text_size + 6))
    out.paste(bar, (0, text_size + 6 + side))
    return out


def fit_text(draw: ImageDraw.ImageDraw, text: str, text_font, width: int) -> str:
    """`text`, shortened with an ellipsis until it fits `width` pixels."""
    while text and draw.textlength(text, font=text_font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def shared_limits(views: list, methods: list[str]) -> dict[str, float | None]:
    """Per map type, the largest magnitude over the views' maps of that type: one colour bar for all of them."""
    out: dict[str, float | None] = {}
    for name in methods:
        values = [float(np.abs(v.maps[name].values).max()) for v in views if name in v.maps]
        out[name] = max(values) if values else None
    return out


def panel(face, views: list, methods: list[str] | None = None, scale: int = 4) -> Image.Image:
    """One row per model: the face crop, its STN view and each map with its colour bar (one scale per map type,
    shared by the rows); the model, its top class and the explained class above. `methods`: which maps, in order
    (default: every map of the first view)."""
    from deep_emotion.explain.registry import EXPLAINERS

    methods = methods or (list(views[0].maps) if views else [])
    limits = shared_limits(views, methods)  # one colour scale per map type, so rows compare
    side = 48 * scale
    text_size = max(12, scale * 3)
    tiles_per_row = []
    for v in views:
        tiles = [titled(grey_image(face.crop, scale), "input", text_size)]
        tiles.append(
            titled(grey_image(v.stn_view, scale), "STN view", text_size)
            if v.stn_view is not None
            else titled(Image.new("RGB", (side, side), (235, 235, 235)), "no STN", text_size)
        )
        for name in methods:
            if name in v.maps:
                tiles.append(map_tile(face.crop, v.maps[name], EXPLAINERS[name].title, scale, text_size, limits[name]))
        tiles_per_row.append(tiles)
    header = text_size + 10
    heights = [max(t.height for t in row) for row in tiles_per_row]
    width = max((len(row) for row in tiles_per_row), default=1) * (side + 6)
    out = Image.new("RGB", (width, sum(h + header for h in heights) or 1), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    y = 0
    for v, row, h in zip(views, tiles_per_row, heights):
        line = f"{v.model}: {v.top} ({v.probabilities[v.top]:.0%})" + (
            f"; maps explain {v.target}" if v.target != v.top else ""
        )
        draw.text((4, y + 4), line, fill=(0, 0, 0), font=font(text_size + 2))
        for i, tile in enumerate(row):
            out.paste(tile, (i * (side + 6), y + header))
        y += h + header
    return out


def titled(image: Image.Image, title: str, text_size: int = 16) -> Image.Image:
    """The image with a centred title above it."""
    out = Image.new("RGB", (image.width, text_size + 6 + image.height), (255, 255, 255))
    ImageDraw.Draw(out).text((image.width // 2, 2), title, fill=(0, 0, 0), font=font(text_size), anchor="ma")
    out.paste(image.convert("RGB"), (0, text_size + 6))
    return out

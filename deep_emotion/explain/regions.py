"""Facial regions (eyes, brows, nose, mouth placed from the five MTCNN landmarks, each blurred away in turn) and
the STN's attention (the quadrilateral of the input it samples), as registered methods."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deep_emotion.explain.gradients import _stn, to_input_frame
from deep_emotion.explain.registry import (
    Context,
    ExplainerUnavailable,
    Map,
    _probability,
    _values,
    images_per_face,
    register_explainer,
)

# Where MTCNN puts the five landmarks on a FER2013 crop (48x48), the median over 283 of 300 training faces
# (seed 0) upscaled x4 and found by `faces.detect_faces`: used when a face has no landmarks of its own.
TYPICAL_LANDMARKS = np.array([[14.3, 19.3], [32.9, 18.8], [23.9, 29.1], [16.3, 38.7], [31.8, 38.2]])
REGIONS = ("eyes", "brows", "nose", "mouth", "rest")


def region_mask(landmarks: np.ndarray | None, size: int = 48) -> tuple[np.ndarray, bool]:
    """(size, size) int map of REGIONS indices from the five landmarks (crop pixels), and whether the face's
    own landmarks were used (False: TYPICAL_LANDMARKS, scaled to `size`). Ellipses in the frame of the eye line,
    so a tilted head gets tilted regions: eyes, brows above them, the mouth around its corners, the nose
    from between the eyes to its tip; everything else is 'rest'."""
    own = landmarks is not None and np.isfinite(landmarks).all() and np.asarray(landmarks).shape == (5, 2)
    pts = np.asarray(landmarks, dtype=float) if own else TYPICAL_LANDMARKS * size / 48
    le, re, nose, ml, mr = pts
    d = float(np.hypot(*(re - le)))
    if not own or d < 2:
        pts = TYPICAL_LANDMARKS * size / 48
        le, re, nose, ml, mr = pts
        d, own = float(np.hypot(*(re - le))), False
    u = (re - le) / d
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    pix = np.stack([xs, ys], -1)

    def ellipse(centre: np.ndarray, ra: float, rb: float) -> np.ndarray:
        rel = pix - centre
        return ((rel @ u) / ra) ** 2 + ((rel @ v) / rb) ** 2 <= 1

    eyes_mid = (le + re) / 2
    mouth_mid = (ml + mr) / 2
    mouth_half = max(float(np.hypot(*(mr - ml))) / 2, 0.2 * d)
    nose_len = max(float((nose - eyes_mid) @ v), 0.3 * d)
    shapes = {  # earlier regions win where two overlap
        "mouth": ellipse(mouth_mid + 0.05 * d * v, mouth_half + 0.2 * d, 0.3 * d),
        "eyes": ellipse(le, 0.3 * d, 0.2 * d) | ellipse(re, 0.3 * d, 0.2 * d),
        "brows": ellipse(le - 0.38 * d * v, 0.36 * d, 0.16 * d) | ellipse(re - 0.38 * d * v, 0.36 * d, 0.16 * d),
        "nose": ellipse(eyes_mid + 0.55 * nose_len * v, 0.22 * d, 0.55 * nose_len + 0.05 * d),
    }
    mask = np.full((size, size), REGIONS.index("rest"), dtype=np.int64)
    taken = np.zeros((size, size), dtype=bool)
    for name, inside in shapes.items():
        mask[inside & ~taken] = REGIONS.index(name)
        taken |= inside
    return mask, own


@register_explainer(
    "regions",
    "Facial regions",
    "Each facial region (eyes, brows, nose, mouth, rest) blurred away in turn: how much the class's probability falls.",
)
def regions(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    """Captum FeatureAblation with a feature mask from the face's landmarks. A region is replaced by the same
    region of the face blurred (sigma `region_blur`), not by black: a black ellipse is itself a strong feature
    (over the mouth it reads as an open mouth — on the example photo hiding the mouth in black lowered *happy*
    by 0.02, blurring it by 0.69, while 8x8 black windows on the mouth lowered it by up to 0.85)."""
    from captum.attr import FeatureAblation
    from torchvision.transforms.functional import gaussian_blur

    mask, own = region_mask(ctx.landmarks, x.shape[-1])
    present = [r for r in range(len(REGIONS)) if (mask == r).any()]
    ids = np.full_like(mask, -1)
    for k, r in enumerate(present):
        ids[mask == r] = k  # Captum numbers features 0..n-1
    feature_mask = torch.from_numpy(ids).view(1, 1, *mask.shape).to(x.device)
    with torch.no_grad():
        blurred = gaussian_blur(x, kernel_size=2 * math.ceil(3 * ctx.region_blur) + 1, sigma=ctx.region_blur)
        attr = FeatureAblation(_probability(model)).attribute(
            x, baselines=blurred, target=target, feature_mask=feature_mask, perturbations_per_eval=len(present)
        )
    values = _values(attr)
    found = {REGIONS[r]: float(values[mask == r][0]) for r in present}
    found = dict(sorted(found.items(), key=lambda kv: -abs(kv[1])))
    m = Map(
        "regions",
        values,
        True,
        "probability (region blurred)",
        (len(present) + 1) * images_per_face(model),
        0,
        regions=found,
    )
    m.note = "" if own else "typical landmark positions (this face has none of its own)"
    return m


def region_sentence(m: Map, class_name: str) -> str:
    """The region that moved the prediction most, in words: 'blurring the mouth lowers happy by 0.69'."""
    if not m.regions:
        return ""
    name, value = next(iter(m.regions.items()))
    where = "everything but eyes, brows, nose and mouth" if name == "rest" else f"the {name}"
    return f"blurring {where} {'lowers' if value >= 0 else 'raises'} {class_name} by {abs(value):.2f}"


# --- the spatial transformer -----------------------------------------------------------------


@register_explainer(
    "stn",
    "STN attention",
    "The part of the input the spatial transformer samples: what the rest of the network sees.",
    target_dependent=False,
)
def stn_attention(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    stn = _stn(model, x)
    if stn is None:
        raise ExplainerUnavailable("this model has no spatial transformer")
    theta = stn[1][:1]
    h, w = x.shape[-2:]
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=theta.dtype)
    sampled = corners @ theta[0, :, :2].T.cpu() + theta[0, :, 2].cpu()  # normalised input coordinates
    outline = ((sampled + 1) / 2 * torch.tensor([w, h], dtype=theta.dtype)).numpy()
    inside = to_input_frame(torch.ones(1, 1, h, w, dtype=theta.dtype, device=theta.device), theta)
    return Map(
        "stn",
        _values(inside),
        False,
        "share of the pixel inside the sampled area",
        images_per_face(model),
        0,
        outline=outline,
    )


def turned_degrees(outline: np.ndarray) -> float:
    """How far the sampled quadrilateral's top edge is turned (degrees, counter-clockwise in the picture)."""
    (x0, y0), (x1, y1) = outline[0], outline[1]
    return math.degrees(math.atan2(-(y1 - y0), x1 - x0))

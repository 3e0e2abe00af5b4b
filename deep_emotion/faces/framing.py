"""Framing a found face the way the training faces look (`Framing`, `crop_face`).

FER2013's faces fill the whole 48x48 frame: a square around MTCNN's box, `margin` of its size added on each side
(slightly negative: the data sets' own crops are a little tighter than MTCNN's box), then grey and resized to
48x48. The framing rules (`Framing`, measured with the photo protocol,
`photo_protocol.py`):
- the square stays inside the photo: it is shifted, then shrunk, rather than padded with black where the photo
  has pixels (a tight selfie or an uploaded face crop used to lose up to half its square to a black border);
- a face cut off by the photo's own edge (its box alone does not fit) is not padded either: the square shrinks
  to the photo (`pad="none"`; repeating edge pixels or black scored lower on FER2013 validation faces);
- when MTCNN finds nothing, it looks again, more leniently, on a copy with context added around the photo
  (MTCNN misses faces that fill the whole picture), accepting only a face that fills much of the photo;
- when there is still none, it looks in copies turned by ±`rotate_retry` degrees (strongly tilted heads), and
  turns what it finds back;
- `align`: the square is turned so that the eyes (MTCNN's landmarks) tilt at most `align_above` (10) degrees:
  a head tilted further is turned back to that tilt, one tilted less is left as it is (training faces tilt
  too); chosen on FER2013 validation photos over no turn and over levelling every face;
- `or_whole_picture`: callers read a small, square picture with no face found as one face (a face crop).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from deep_emotion.models.inputs import INPUT_SIZE, to_grey_square

DEFAULT_MARGIN = -0.02  # fraction of the box size added on each side (negative: the square is a little smaller than
# MTCNN's box): FER2013's, FERPlus's and CK+'s own crops are 0.96x MTCNN's box on their training faces
# (train/fit_framing.py -> train/framing_fit.json); on validation photos this beat 0.0 and the former 0.1
MIN_PROBABILITY = 0.9  # MTCNN's own face threshold for its last stage
DETECT_MAX_SIDE = 1280  # larger photos are detected on a downscaled copy; boxes are mapped back
CONTEXT_PAD = 0.25  # the retry's added context, per side, as a fraction of the photo's longer side
RETRY_THRESHOLDS = (0.5, 0.5, 0.5)  # MTCNN's three stage thresholds in the retry (its defaults: 0.6, 0.7, 0.7)
RETRY_MIN_PROBABILITY = 0.7  # ... and the face probability it needs there
RETRY_MIN_SHARE = 0.4  # ... for a face at least this share of the photo's shorter side, centred inside it
PAD_MODES = ("edge", "black", "none")
MAX_CROP_SIDE = 2048  # a padded square larger than this is built at a reduced scale (it becomes 48x48 anyway)
WHOLE_PICTURE_MAX_SIDE = 512  # a picture with no face found that is at most this large and about square ...
WHOLE_PICTURE_MAX_ASPECT = 1.25  # ... is taken to be a face crop itself (see `or_whole_picture`) ...
WHOLE_PICTURE_MIN_STD = 10.0  # ... unless it is flat (grey levels' standard deviation below this)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Framing:
    """How a detected face becomes the network's 48x48 input (recorded on every model card)."""

    margin: float = DEFAULT_MARGIN  # added on each side, fraction of the box's longer side
    inside: bool = True  # keep the square inside the photo (shift, then shrink); False: pad black as PIL does
    pad: str = "none"  # a face cut off by the photo's edge: "none" (the square shrinks to fit the photo even
    # below the face's box; best on FER2013 validation faces given as tight photos), "edge" pixels repeated, "black"
    context_retry: bool = True  # no face found: look again with context added around the photo
    rotate_retry: float = 30.0  # still none: look again in copies turned by ± this many degrees (0: off)
    align: bool = True  # rotate the square so the eyes are level ...
    align_above: float = 10.0  # ... or only within this many degrees of level (a face tilted further is turned
    # back to this tilt; training faces tilt too: FER2013's eye lines, median 4.5, p75 10, p90 20 degrees).
    # Chosen on FER2013 validation photos over no turn, 0 and 20 (README, Real photos)

    def __post_init__(self) -> None:
        if not -0.25 <= self.margin <= 2:
            raise ValueError(f"margin must be in [-0.25, 2], not {self.margin}")
        if self.pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, not {self.pad!r}")
        if not 0 <= self.align_above < 90:
            raise ValueError(f"align_above must be in [0, 90) degrees, not {self.align_above}")
        if self.pad == "none" and not self.inside:
            raise ValueError("pad='none' keeps the square inside the photo: it needs inside=True")

    @classmethod
    def from_card(cls, face_crop: dict | None) -> Framing:
        """The framing a model card's `face_crop` records; cards from before the framing rules (no `inside`
        key) get the legacy framing they were made with."""
        if not face_crop:
            return cls()
        if "inside" not in face_crop:
            return cls(
                margin=float(face_crop.get("margin", DEFAULT_MARGIN)),
                inside=False,
                pad="black",
                context_retry=False,
                rotate_retry=0.0,
                align=False,
            )
        kw = {
            k: face_crop[k]
            for k in ("margin", "inside", "pad", "context_retry", "rotate_retry", "align", "align_above")
            if k in face_crop
        }
        kw.setdefault("align", False)  # cards from before alignment shipped
        kw.setdefault("align_above", 0.0)  # ... and before the partial turn: alignment levelled every face
        return cls(**kw)

    def tag(self) -> str:
        """A short name for caches: what changes the crops."""
        return (
            f"m{self.margin}"
            + ("-in" if self.inside else "")
            + f"-{self.pad}"
            + (f"-retry{CONTEXT_PAD}-{RETRY_MIN_SHARE}" if self.context_retry else "")
            + (f"-rot{self.rotate_retry:g}" if self.rotate_retry else "")
            + (f"-align{self.align_above:g}" if self.align else "")
        )

    def turn(self, landmarks: np.ndarray | None) -> float:
        """Degrees the face's square is turned by before cropping: none without `align`; the eye line's tilt
        beyond ±`align_above` otherwise (0: all of it)."""
        if not self.align:
            return 0.0
        a = eye_angle(landmarks)
        return math.copysign(max(0.0, abs(a) - self.align_above), a)

    def card(self) -> dict:
        return {
            "detector": "facenet-pytorch 2.5.3 MTCNN",
            **asdict(self),
            "square": True,
            "margin_chosen_by": "train/fit_framing.py -> train/framing_fit.json (training faces); "
            "benchmarks/photo_protocol.py --framings default,m0,fit (validation photos)",
            "framing_chosen_by": "benchmarks/photo_protocol.py (README, Real photos); the turn: --framings "
            "fit,fit-align0,fit-align10,fit-align20 (validation photos)",
            "min_probability": MIN_PROBABILITY,
            "resize": "bilinear, antialiased, to 48x48",
        }


DEFAULT_FRAMING = Framing()
LEGACY_FRAMING = Framing(
    margin=0.1, inside=False, pad="black", context_retry=False, rotate_retry=0.0, align=False
)  # before the rules
FACE_CROP = DEFAULT_FRAMING.card()


def eye_angle(landmarks: np.ndarray | None) -> float:
    """Degrees (counter-clockwise in the picture) by which the line from the left to the right eye rises;
    0 without landmarks or when they are not finite."""
    if landmarks is None:
        return 0.0
    (lx, ly), (rx, ry) = np.asarray(landmarks, dtype=float)[:2]
    if not np.isfinite([lx, ly, rx, ry]).all() or (lx == rx and ly == ry):
        return 0.0
    return math.degrees(math.atan2(-(ry - ly), rx - lx))


def square_in_photo(
    box: Box, size: tuple[int, int], margin: float, angle: float = 0.0, inside: bool = True, below_face: bool = False
) -> tuple[float, float, float]:
    """(cx, cy, side) of the face's square: centred on the box, side = longer box side x (1 + 2 margin).
    With `inside`, the square (rotated by `angle`) is shifted, then shrunk down to the box's own size
    (`below_face`: further, to fit), to stay inside the photo; a face larger than that is left where it is
    (the crop pads)."""
    x0, y0, x1, y1 = box
    w, h = size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    face = max(x1 - x0, y1 - y0, 1.0)
    side = face * (1 + 2 * margin)
    if not inside:
        return cx, cy, side
    spread = abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))  # rotated square's extent
    fit = min(w, h) / spread
    side = min(side, fit) if below_face else max(min(side, fit), min(face, side))
    half = side * spread / 2
    cx = min(max(cx, half), w - half) if 2 * half <= w else cx  # per axis: shifted inside where it fits,
    cy = min(max(cy, half), h - half) if 2 * half <= h else cy  # else left on the face (the crop pads)
    return cx, cy, side


def landmarks_in_crop(
    landmarks: np.ndarray, box: Box, size: tuple[int, int], framing: Framing, out: int = INPUT_SIZE
) -> np.ndarray:
    """The photo's landmarks (5, 2) in the pixels of the face's (out x out) crop, as `crop_face` frames it
    (its square, turned upright when `framing.align`): x, y with 0 at the crop's top-left corner."""
    angle = framing.turn(landmarks)
    cx, cy, side = square_in_photo(box, size, framing.margin, angle, framing.inside, framing.pad == "none")
    d = np.asarray(landmarks, dtype=float) - (cx, cy)
    a = math.radians(angle)  # the crop turns the photo clockwise by `angle` (y points down)
    turned = np.stack([d[:, 0] * math.cos(a) - d[:, 1] * math.sin(a), d[:, 0] * math.sin(a) + d[:, 1] * math.cos(a)], 1)
    return turned / side * out + out / 2


def _padded_crop(image: Image.Image, bounds: tuple[int, int, int, int], pad: str) -> Image.Image:
    """image.crop(bounds); parts outside the photo repeat its edge pixels ("edge") or are black (otherwise).
    A square larger than MAX_CROP_SIDE is built at a reduced scale (it becomes 48x48 anyway)."""
    x0, y0, x1, y1 = bounds
    w, h = image.size
    if x1 <= x0 or y1 <= y0 or (x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h):
        return image.crop(bounds)
    left, top = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)  # the nearest part of the photo (>= 1 pixel)
    right, bottom = max(min(x1, w), left + 1), max(min(y1, h), top + 1)
    inner = image.crop((left, top, right, bottom))
    k = min(1.0, MAX_CROP_SIDE / max(x1 - x0, y1 - y0))
    if k < 1.0:
        inner = inner.resize(
            (max(1, round(inner.width * k)), max(1, round(inner.height * k))), Image.Resampling.BILINEAR
        )
    arr = np.asarray(inner)
    widths = [
        (round(max(0, top - y0) * k), round(max(0, y1 - bottom) * k)),
        (round(max(0, left - x0) * k), round(max(0, x1 - right) * k)),
    ]
    if pad == "edge":
        return Image.fromarray(np.pad(arr, widths + [(0, 0)] * (arr.ndim - 2), mode="edge"))
    outside = x0 >= w or y0 >= h or x1 <= 0 or y1 <= 0  # no part of the photo: all black
    arr = np.zeros_like(arr) if outside else arr
    return Image.fromarray(np.pad(arr, widths + [(0, 0)] * (arr.ndim - 2), mode="constant"))


def crop_face(
    image: Image.Image,
    box: Box,
    margin: float = DEFAULT_MARGIN,
    size: int = INPUT_SIZE,
    landmarks: np.ndarray | None = None,
    framing: Framing | None = None,
) -> np.ndarray:
    """The face's square (see `square_in_photo`), rotated upright when `framing.align`; grey (size, size) uint8."""
    framing = framing or Framing(margin=margin)
    angle = framing.turn(landmarks)
    cx, cy, side = square_in_photo(box, image.size, framing.margin, angle, framing.inside, framing.pad == "none")
    if angle == 0.0:
        bounds = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        return to_grey_square(_padded_crop(image, bounds, framing.pad), size)
    # the rotated square's bounding box, shrunk to a few times the output size first, then turned upright
    spread = abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))
    half = side * spread / 2
    bounds = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
    region = _padded_crop(image, bounds, framing.pad)
    scale = min(1.0, 4 * size * spread / max(region.size))
    if scale < 1.0:
        region = region.resize(
            (max(1, round(region.width * scale)), max(1, round(region.height * scale))),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
    upright = region.rotate(-angle, Image.Resampling.BICUBIC, center=(region.width / 2, region.height / 2))
    s = side * region.width / (bounds[2] - bounds[0])
    c = region.width / 2, region.height / 2
    return to_grey_square(
        upright.crop((round(c[0] - s / 2), round(c[1] - s / 2), round(c[0] + s / 2), round(c[1] + s / 2))), size
    )

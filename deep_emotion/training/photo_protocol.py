"""The photo protocol: a data set's test faces "uploaded as photos" and pushed through the whole pipeline the
app uses (MTCNN -> framing -> 48x48 -> network), in variants that imitate real uploads.

Every variant is made deterministically from one 48x48 test face (seeded per face):
- `tight-x2`, `tight-x4`: the crop itself, upscaled (bicubic) to 96 / 192 px — a face that fills the picture;
- `context`: the face, upscaled so that it spans 15-40 % of a 480x360 frame's width, at a random place; the rest
  of the frame is the face itself mirrored outwards and blurred (Gaussian, radius = face side / 6). Chosen over
  a flat fill (trivial for a detector) and over tiling other test faces (several equal faces: which one is
  "the" face would be ambiguous): the surround has the photo's own grey levels and texture, no sharp face;
- `rotate-30` ... `rotate+30`: the `context` frame turned about the face's centre (positive: counter-clockwise);
- `dark` (brightness x0.4), `bright` (x1.6), `low-contrast` (x0.4 around the mean), `gamma-2` (mid-tones darker),
  `jpeg-30` (JPEG quality 30): the `context` frame with the light or compression changed.
The face a user sees is the largest one found (or, with none found in a small square picture, the whole
picture, as the app does); it counts as found when it overlaps the face's true square (IoU >= 0.25). For
`tight` the picture is the data set's crop, in which the face is centred but need not fill it (FER2013's crops
show some faces at half the crop's width, others cut off by it): there the face counts as found when its box
covers the picture's centre and is at least a quarter of the picture's side (IoU with the whole picture, the
rule until session 7, counted 11 right faces out of 12 "misses" on FER2013 / FERPlus tight-x4 as missed). `found`
counts those answers, `found_by_mtcnn` only MTCNN's. A missed face is a wrong answer in accuracy, balanced accuracy
and
recall (the user gets no answer), and no prediction in precision.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from deep_emotion.faces.detect import Face, iou
from deep_emotion.faces.framing import Box

if TYPE_CHECKING:
    from deep_emotion.pipeline import Pipeline

FRAME = (480, 360)  # context frames: one size, so MTCNN takes them in batches
FACE_SHARE = (0.15, 0.40)  # the face's side as a share of the frame's width
ANGLES = (-30, -20, -10, 10, 20, 30)
MATCH_IOU = 0.25

GROUPS: dict[str, tuple[str, ...]] = {
    "tight": ("tight-x2", "tight-x4"),
    "context": ("context",),
    "rotated": tuple(f"rotate{a:+d}" for a in ANGLES),
    "light": ("dark", "bright", "low-contrast", "gamma-2", "jpeg-30"),
}
VARIANTS: tuple[str, ...] = tuple(v for vs in GROUPS.values() for v in vs)


@dataclass(frozen=True)
class Photo:
    image: Image.Image
    truth: Box  # where the face really is, in the photo's pixels (`tight`: the whole picture)
    centred: bool = False  # the picture is a face crop: the face is centred in it, of unknown size

    def found_by(self, box: Box) -> bool:
        """Whether a box found in the photo is this face (see the module's docstring)."""
        if not self.centred:
            return iou(box, self.truth) >= MATCH_IOU
        w, h = self.image.size
        side = max(box[2] - box[0], box[3] - box[1])
        return box[0] <= w / 2 <= box[2] and box[1] <= h / 2 <= box[3] and side >= min(w, h) / 4


def _light(frame: Image.Image, variant: str) -> Image.Image:
    if variant == "dark":
        return ImageEnhance.Brightness(frame).enhance(0.4)
    if variant == "bright":
        return ImageEnhance.Brightness(frame).enhance(1.6)
    if variant == "low-contrast":
        return ImageEnhance.Contrast(frame).enhance(0.4)
    if variant == "gamma-2":
        return frame.point([round(255 * (i / 255) ** 2.0) for i in range(256)] * len(frame.getbands()))
    if variant == "jpeg-30":
        buf = io.BytesIO()
        frame.save(buf, "JPEG", quality=30)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    raise ValueError(f"unknown light variant {variant!r}")


def _context_canvas(face: np.ndarray, side: int, rng: np.random.Generator) -> tuple[Image.Image, Box, int]:
    """A square canvas centred on the upscaled face, large enough to cover the frame after any rotation;
    the face's place in the frame; the canvas's half size."""
    w, h = FRAME
    x, y = (int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1)))
    cx, cy = x + side / 2, y + side / 2
    half = int(np.ceil(np.hypot(max(cx, w - cx), max(cy, h - cy)))) + 2
    up = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC))
    pad = half - side // 2
    mirrored = np.pad(up, pad, mode="symmetric")[: 2 * half, : 2 * half]
    canvas = Image.fromarray(mirrored).filter(ImageFilter.GaussianBlur(side / 6))
    canvas.paste(Image.fromarray(up), (half - side // 2, half - side // 2))
    return canvas.convert("RGB"), (x, y, x + side, y + side), half


def make_photo(face: np.ndarray, variant: str, index: int, seed: int = 0) -> Photo:
    """One test face (48x48 uint8) as the photo of `variant`; the same (face, index, seed) gives the same photo,
    and all context-based variants of a face share its frame."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant.startswith("tight-x"):
        n = face.shape[0] * int(variant[len("tight-x") :])
        return Photo(
            Image.fromarray(face).resize((n, n), Image.Resampling.BICUBIC).convert("RGB"), (0, 0, n, n), centred=True
        )
    rng = np.random.default_rng([seed, index])
    side = int(round(rng.uniform(*FACE_SHARE) * FRAME[0]))
    canvas, box, half = _context_canvas(face, side, rng)
    angle = float(variant[len("rotate") :]) if variant.startswith("rotate") else 0.0
    if angle:
        canvas = canvas.rotate(angle, Image.Resampling.BICUBIC)  # about the canvas centre = the face's centre
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top = int(round(half - cx)), int(round(half - cy))
    frame = canvas.crop((left, top, left + FRAME[0], top + FRAME[1]))
    if variant in GROUPS["light"]:
        frame = _light(frame, variant)
    return Photo(frame, box)


def scores(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """accuracy, balanced_accuracy (mean recall over classes present), macro_f1, found; pred -1 = no face."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    present = np.unique(labels)
    recall, f1 = [], []
    for c in present:
        tp = int(((pred == c) & (labels == c)).sum())
        support, predicted = int((labels == c).sum()), int((pred == c).sum())
        r = tp / support
        p = tp / predicted if predicted else 0.0
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    per_class = {int(c): round(r, 4) for c, r in zip(present, recall)}
    return {
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "found": float((pred >= 0).mean()),
        "n": int(len(labels)),
        "recall": per_class,
    }


def pipeline_crops(
    faces: np.ndarray,
    variant: str,
    find: Callable[[list[Image.Image]], list[list[Face]]],
    seed: int = 0,
    batch: int = 32,
    indices: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face made into a photo of `variant` and put through `find` (a pipeline's detector, with its framing
    and its fallback for small square pictures): crops (N, 48, 48) uint8, answered (N,) bool (the right face, or
    the whole picture), by_mtcnn (N,) bool (MTCNN found the right face). A face with no answer has an all-zero
    crop."""
    ids = list(range(len(faces))) if indices is None else list(indices)
    crops = np.zeros((len(faces), 48, 48), np.uint8)
    answered, by_mtcnn = np.zeros(len(faces), bool), np.zeros(len(faces), bool)
    for start in range(0, len(faces), batch):
        part = range(start, min(start + batch, len(faces)))
        photos = [make_photo(faces[i], variant, ids[i], seed) for i in part]
        for i, photo, found in zip(part, photos, find([p.image for p in photos])):
            if found and photo.found_by(found[0].box):
                crops[i], answered[i], by_mtcnn[i] = found[0].crop, True, found[0].detected
    return crops, answered, by_mtcnn


def run_protocol(
    pipe: Pipeline,
    faces: np.ndarray,
    labels: np.ndarray,
    variants: Iterable[str],
    models: str | Iterable[str] | None = None,
    seed: int = 0,
    indices: Iterable[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """For every variant and chosen model of the pipeline: scores through its detector and models; "crop": the
    same faces given as crops. `indices` are the faces' indices in their data set (they seed each face's photo).
    The models must share the data set's classes (labels index them)."""
    chosen = pipe.choose(models)
    n_classes = {len(pipe.models[m].classes) for m in chosen}
    if len(n_classes) != 1:
        raise ValueError("the models of one protocol run must share the data set's classes")
    k = n_classes.pop()
    out: dict[str, Any] = {
        "crop": {name: scores(p.argmax(1), labels, k) for name, p in pipe.read_crops(faces, chosen).items()}
    }
    for variant in variants:
        crops, found, by_mtcnn = pipeline_crops(faces, variant, pipe.find_faces_batch, seed, indices=indices)
        out[variant] = {}
        probs = pipe.read_crops(crops[found], chosen)
        for name in chosen:
            pred = np.full(len(faces), -1)
            if found.any():
                pred[found] = probs[name].argmax(1)
            out[variant][name] = {**scores(pred, labels, k), "found_by_mtcnn": float(by_mtcnn.mean())}
        if progress:
            progress(variant)
    return out


def expand_variants(spec: str) -> list[str]:
    """ "all", group names (tight, context, rotated, light) and variant names, comma-separated."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        names = VARIANTS if part == "all" else GROUPS.get(part, (part,))
        for v in names:
            if v not in VARIANTS:
                raise ValueError(f"unknown photo variant {v!r}; known: all, {', '.join(GROUPS)}, {', '.join(VARIANTS)}")
            if v not in out:
                out.append(v)
    return out

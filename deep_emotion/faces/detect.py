"""Finding faces: MTCNN (facenet-pytorch, weights inside the package) with a lenient second look with context and
a third in turned copies (`Framing`), crops framed as the training faces are (`framing.py`).

`Detector` holds these settings, the device and a bound on torch's threads while it runs: it is what the
pipeline calls. `detect_faces` / `detect_faces_batch` are the functions underneath.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image

from deep_emotion.faces.framing import (
    CONTEXT_PAD,
    DEFAULT_FRAMING,
    DEFAULT_MARGIN,
    DETECT_MAX_SIDE,
    MIN_PROBABILITY,
    RETRY_MIN_PROBABILITY,
    RETRY_MIN_SHARE,
    RETRY_THRESHOLDS,
    WHOLE_PICTURE_MAX_ASPECT,
    WHOLE_PICTURE_MAX_SIDE,
    WHOLE_PICTURE_MIN_STD,
    Box,
    Framing,
    crop_face,
    landmarks_in_crop,
)
from deep_emotion.models.inputs import to_grey_square


@dataclass(frozen=True)
class Face:
    box: Box  # x0, y0, x1, y1 in the image's pixels
    probability: float  # MTCNN's face probability
    crop: np.ndarray  # (48, 48) uint8 grey
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2) eyes, nose, mouth corners; x, y
    angle: float = 0.0  # degrees the crop was rotated by (align)
    detected: bool = True  # False: no face was found and the whole picture was read as one
    crop_landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2) the landmarks in crop pixels

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


_DETECTOR_DEVICE = "cpu"


def use_detector_device(device: str) -> None:
    """Run MTCNN on `device` from now on ("cpu", or "cuda" where a host holds a GPU, e.g. a ZeroGPU Space)."""
    global _DETECTOR_DEVICE
    _DETECTOR_DEVICE = str(device)


@lru_cache(maxsize=4)
def _mtcnn(thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), device: str = "cpu"):
    from facenet_pytorch import MTCNN  # weights ship inside the package: nothing is downloaded

    return MTCNN(keep_all=True, device=device, post_process=False, thresholds=list(thresholds))


def _detection_copy(rgb: Image.Image, max_side: int = DETECT_MAX_SIDE) -> tuple[Image.Image, float]:
    """The photo shrunk so its longer side is at most `max_side`, and the factor applied."""
    scale = min(1.0, max_side / max(rgb.size))
    if scale == 1.0:
        return rgb, scale
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _context_copy(rgb: Image.Image) -> tuple[Image.Image, int]:
    """The photo with CONTEXT_PAD of its longer side added per side in its mean colour (MTCNN finds a face that
    fills the whole picture more often with something around it), and the offset added. A plain border found
    more faces than mirrored or edge-repeated ones (mirroring adds mirrored faces)."""
    pad = int(round(CONTEXT_PAD * max(rgb.size)))
    mean = tuple(int(v) for v in np.asarray(rgb).reshape(-1, 3).mean(0))
    out = Image.new("RGB", (rgb.width + 2 * pad, rgb.height + 2 * pad), mean)
    out.paste(rgb, (pad, pad))
    return out, pad


def _turned_copy(rgb: Image.Image, angle: float) -> Image.Image:
    """The photo turned counter-clockwise by `angle` degrees about its centre, enlarged to hold all of it; the
    corners in its mean colour."""
    mean = tuple(int(v) for v in np.asarray(rgb).reshape(-1, 3).mean(0))
    return rgb.rotate(angle, Image.Resampling.BILINEAR, expand=True, fillcolor=mean)


def _unturn(points: np.ndarray, angle: float, turned: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Points (N, 2) of a `_turned_copy` of a photo of `size` back in the photo's pixels."""
    t = math.radians(angle)
    d = np.asarray(points, dtype=float) - np.array(turned, dtype=float) / 2
    x = d[:, 0] * math.cos(t) - d[:, 1] * math.sin(t)
    y = d[:, 0] * math.sin(t) + d[:, 1] * math.cos(t)
    return np.stack([x, y], 1) + np.array(size, dtype=float) / 2


def _run_mtcnn(
    copies: list[Image.Image], thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), device: str | None = None
) -> list[tuple]:
    """(boxes, probs, landmarks) per image; images whose sizes match go through MTCNN together."""
    out: list[tuple] = [(None, None, None)] * len(copies)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, small in enumerate(copies):
        if min(small.size) >= 20:  # below MTCNN's smallest face (20 px) its image pyramid is empty: no face
            groups.setdefault(small.size, []).append(i)
    for idx in groups.values():
        boxes, probs, points = _mtcnn(thresholds, device or _DETECTOR_DEVICE).detect(
            [copies[i] for i in idx], landmarks=True
        )
        for j, i in enumerate(idx):
            out[i] = (boxes[j], probs[j], points[j])
    return out


def _faces_from(
    rgb: Image.Image,
    found: tuple,
    to_photo,
    scale: float,
    framing: Framing,
    min_probability: float,
    min_share: float = 0.0,
) -> list[Face]:
    """Faces of one MTCNN answer on a copy of the photo, largest first. `to_photo` maps points (N, 2) of the copy
    to the photo's pixels (shifted, scaled, turned back); boxes keep their size / `scale`. Crops use the photo."""
    boxes, probs, points = found
    if boxes is None:
        return []
    faces = []
    for k, (b, p) in enumerate(zip(boxes, probs)):
        if p is None or p < min_probability:
            continue
        b = np.asarray(b, dtype=float)
        w, h = (b[2] - b[0]) / scale, (b[3] - b[1]) / scale
        if not np.isfinite(b).all() or w < 1 or h < 1:
            continue  # a degenerate box: no face
        ((cx, cy),) = to_photo(np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]]))
        if not (0 <= cx <= rgb.width and 0 <= cy <= rgb.height):
            continue  # found in the added context only
        if max(w, h) < min_share * min(rgb.size):
            continue
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        marks = None if points is None else to_photo(np.asarray(points[k], dtype=float))
        angle = framing.turn(marks)
        in_crop = None if marks is None else landmarks_in_crop(marks, box, rgb.size, framing)
        faces.append(
            Face(
                box,
                float(p),
                crop_face(rgb, box, landmarks=marks, framing=framing),
                marks,
                angle,
                crop_landmarks=in_crop,
            )
        )
    return sorted(faces, key=lambda f: f.area, reverse=True)


def _shifted(scale: float, offset: float = 0.0):
    """`to_photo` for a copy scaled by `scale` with `offset` photo pixels added on each side."""
    return lambda q: q / scale - offset


def _turned(angle: float, turned: tuple[int, int], source: tuple[int, int], scale: float):
    """`to_photo` for a copy (size `turned`) of the detection copy (size `source`) turned by `angle`."""
    return lambda q: _unturn(q, angle, turned, source) / scale


def detect_faces(
    image: Image.Image,
    margin: float = DEFAULT_MARGIN,
    min_probability: float = MIN_PROBABILITY,
    framing: Framing | None = None,
) -> list[Face]:
    """Every face MTCNN finds in an RGB image, largest first; an empty list when there is none.
    Photos larger than DETECT_MAX_SIDE are searched on a downscaled copy."""
    return detect_faces_batch([image], margin, min_probability, framing)[0]


def detect_faces_batch(
    images: list[Image.Image],
    margin: float = DEFAULT_MARGIN,
    min_probability: float = MIN_PROBABILITY,
    framing: Framing | None = None,
    detect_side: int = DETECT_MAX_SIDE,
    device: str | None = None,
) -> list[list[Face]]:
    """`detect_faces` for many photos: those whose detection copies (longer side at most `detect_side`) share a
    size go through MTCNN together; photos with no face are searched again with context around them
    (`Framing.context_retry`), then in turned copies (`Framing.rotate_retry`)."""
    framing = framing or (DEFAULT_FRAMING if margin == DEFAULT_MARGIN else Framing(margin=margin))
    rgbs = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    copies = [_detection_copy(im, detect_side) for im in rgbs]
    found = _run_mtcnn([c for c, _ in copies], device=device)
    out = [_faces_from(rgb, f, _shifted(s), s, framing, min_probability) for rgb, (_, s), f in zip(rgbs, copies, found)]
    missed = [i for i, faces in enumerate(out) if not faces and min(rgbs[i].size) >= 20]
    if framing.context_retry and missed:  # the retries work on the (at most 1280 px) detection copies
        padded = [_context_copy(copies[i][0]) for i in missed]
        retry = _run_mtcnn([p for p, _ in padded], RETRY_THRESHOLDS, device)
        for i, (_, pad), f in zip(missed, padded, retry):  # only a face that fills the photo
            s = copies[i][1]
            out[i] = _faces_from(
                rgbs[i],
                f,
                _shifted(s, pad / s),
                s,
                framing,
                min(min_probability, RETRY_MIN_PROBABILITY),
                RETRY_MIN_SHARE,
            )
    missed = [i for i, faces in enumerate(out) if not faces and min(rgbs[i].size) >= 20]
    if framing.rotate_retry and missed:  # MTCNN misses strongly tilted heads: look in turned copies
        for angle in (framing.rotate_retry, -framing.rotate_retry):
            turned = [_turned_copy(copies[i][0], angle) for i in missed]
            for i, t, f in zip(missed, turned, _run_mtcnn(turned, device=device)):
                small, s = copies[i]
                out[i] = _faces_from(rgbs[i], f, _turned(angle, t.size, small.size, s), s, framing, min_probability)
            missed = [i for i in missed if not out[i]]
    return out


def whole_image_face(image: Image.Image) -> Face:
    """Treat the whole image as the face crop (for images that are already cropped faces)."""
    w, h = image.size
    return Face((0.0, 0.0, float(w), float(h)), 1.0, to_grey_square(image), detected=False)


def looks_like_face_crop(image: Image.Image) -> bool:
    """Small, about square and not flat, as data-set face crops and cut-out faces are."""
    w, h = image.size
    if max(w, h) > WHOLE_PICTURE_MAX_SIDE or max(w, h) > WHOLE_PICTURE_MAX_ASPECT * min(w, h):
        return False
    return float(np.asarray(image.convert("L"), dtype=np.float32).std()) >= WHOLE_PICTURE_MIN_STD


def or_whole_picture(image: Image.Image, faces: list[Face]) -> list[Face]:
    """`faces`, or, when none was found in a picture that `looks_like_face_crop`, the whole picture as one face
    (`detected=False`): MTCNN misses about one in ten FER2013 crops even with added context."""
    if faces or not looks_like_face_crop(image):
        return faces
    return [whole_image_face(image)]


def largest_face_crop(path, margin: float = DEFAULT_MARGIN, framing: Framing | None = None) -> np.ndarray:
    """The crop of the largest face MTCNN finds in an image file (used to crop uncropped data sets such as
    JAFFE with the very pipeline that serves uploads); the whole image if no face is found."""
    from deep_emotion.faces.images import load_image

    image = load_image(path)
    faces = detect_faces(image, margin=margin, framing=framing)
    return faces[0].crop if faces else whole_image_face(image).crop


_THREADS_GUARD = threading.Lock()


@contextmanager
def bounded_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op threads at most `n` inside the block (None: unchanged). MTCNN runs thousands of tiny
    operations: beyond two threads they gain nothing, and on a shared machine every extra thread is one more that
    each parallel region waits for. Measured on 2 cores, the 900x916 photo without a face (all three looks): 0.70 s
    quiet with 2 threads, 1.15 s with 1; beside two busy loops 6.0 s with 2 threads and OpenMP's default (spinning)
    wait policy, 1.1 s with idle threads that sleep (OMP_WAIT_POLICY=PASSIVE, which every front end sets)."""
    if n is None:
        yield
        return
    import torch

    with _THREADS_GUARD:
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, min(n, before)))
        try:
            yield
        finally:
            torch.set_num_threads(before)


@dataclass(frozen=True)
class Detector:
    """Faces of pictures, largest first: MTCNN with the framing's retries; a small square picture with no face
    found is read as one face (`whole_picture`); `detect=False` reads every picture as one face."""

    framing: Framing = DEFAULT_FRAMING
    min_probability: float = MIN_PROBABILITY
    detect_side: int = DETECT_MAX_SIDE  # longer side of the copy MTCNN searches
    whole_picture: bool = True
    device: str = "cpu"
    threads: int | None = 2  # at most this many torch threads while detecting (None: torch's own setting)

    def __call__(self, image: Image.Image, detect: bool = True) -> list[Face]:
        return self.batch([image], detect)[0]

    def batch(self, images: list[Image.Image], detect: bool = True) -> list[list[Face]]:
        """Faces of each picture; pictures whose detection copies share a size go through MTCNN together."""
        if not detect:
            return [[whole_image_face(im)] for im in images]
        with bounded_threads(self.threads):
            found = detect_faces_batch(
                images,
                min_probability=self.min_probability,
                framing=self.framing,
                detect_side=self.detect_side,
                device=self.device,
            )
        return [or_whole_picture(im, fs) if self.whole_picture else fs for im, fs in zip(images, found)]

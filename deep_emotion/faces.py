"""Finding faces (MTCNN from facenet-pytorch) and cropping them the way the training faces look.

FER2013's faces fill most of the 48x48 frame: a square around MTCNN's box, widened by `margin`
of its size on each side, then grey and resized to 48x48.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from .preprocess import INPUT_SIZE, to_grey_square

DEFAULT_MARGIN = 0.1  # fraction of the box size added on each side; chosen by train/calibrate_margin.py
MIN_PROBABILITY = 0.9  # MTCNN's own face threshold for its last stage
DETECT_MAX_SIDE = 1280  # larger photos are detected on a downscaled copy; boxes are mapped back
FACE_CROP = {"detector": "facenet-pytorch 2.5.3 MTCNN", "margin": DEFAULT_MARGIN, "square": True,
             "margin_chosen_by": "train/calibrate_margin.py -> train/margin_calibration.json",
             "min_probability": MIN_PROBABILITY, "resize": "bilinear, antialiased, to 48x48"}


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    probability: float  # MTCNN's face probability
    crop: np.ndarray  # (48, 48) uint8 grey

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@lru_cache(maxsize=1)
def _mtcnn():
    from facenet_pytorch import MTCNN  # weights ship inside the package: nothing is downloaded

    return MTCNN(keep_all=True, device="cpu", post_process=False)


def crop_face(image: Image.Image, box: tuple[float, float, float, float], margin: float = DEFAULT_MARGIN,
              size: int = INPUT_SIZE) -> np.ndarray:
    """Square crop centred on `box`, widened by `margin` of its size per side; grey (size, size) uint8."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    square = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return to_grey_square(image.crop(square), size)  # outside the photo: black, as PIL pads


def _detection_copy(rgb: Image.Image) -> tuple[Image.Image, float]:
    """The photo shrunk so its longer side is at most DETECT_MAX_SIDE, and the factor applied."""
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.size))
    if scale == 1.0:
        return rgb, scale
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _faces_from(rgb: Image.Image, scale: float, boxes, probs, margin: float, min_probability: float) -> list[Face]:
    if boxes is None:
        return []
    faces = []
    for b, p in zip(boxes, probs):
        if p is None or p < min_probability:
            continue
        box = tuple(float(v) / scale for v in b)  # back to the photo's pixels; the crop uses full resolution
        faces.append(Face(box, float(p), crop_face(rgb, box, margin)))
    return sorted(faces, key=lambda f: f.area, reverse=True)


def detect_faces(image: Image.Image, margin: float = DEFAULT_MARGIN,
                 min_probability: float = MIN_PROBABILITY) -> list[Face]:
    """Every face MTCNN finds in an RGB image, largest first; an empty list when there is none.
    Photos larger than DETECT_MAX_SIDE are searched on a downscaled copy."""
    return detect_faces_batch([image], margin, min_probability)[0]


def detect_faces_batch(images: list[Image.Image], margin: float = DEFAULT_MARGIN,
                       min_probability: float = MIN_PROBABILITY) -> list[list[Face]]:
    """`detect_faces` for many photos: those whose detection copies share a size go through MTCNN together."""
    rgbs = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    copies = [_detection_copy(im) for im in rgbs]
    out: list[list[Face]] = [[] for _ in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (small, _) in enumerate(copies):
        if min(small.size) >= 20:  # below MTCNN's smallest face (20 px) its image pyramid is empty: no face
            groups.setdefault(small.size, []).append(i)
    for idx in groups.values():
        boxes, probs = _mtcnn().detect([copies[i][0] for i in idx])
        for j, i in enumerate(idx):
            out[i] = _faces_from(rgbs[i], copies[i][1], boxes[j], probs[j], margin, min_probability)
    return out


def whole_image_face(image: Image.Image) -> Face:
    """Treat the whole image as the face crop (for images that are already cropped faces)."""
    w, h = image.size
    return Face((0.0, 0.0, float(w), float(h)), 1.0, to_grey_square(image))


def largest_face_crop(path, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The crop of the largest face MTCNN finds in an image file (used to crop uncropped data sets such as
    JAFFE with the very pipeline that serves uploads); the whole image if no face is found."""
    from .images import load_image

    image = load_image(path)
    faces = detect_faces(image, margin=margin)
    return faces[0].crop if faces else whole_image_face(image).crop

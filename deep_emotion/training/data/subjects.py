"""Posed data sets with subject ids in their file names: CK+48, JAFFE, FERG."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deep_emotion.errors import DataLayoutError
from deep_emotion.training.data._cache import cached_arrays, files_key
from deep_emotion.training.data.base import FaceDataset, decode_grey, decode_many, list_images, require_dir

if TYPE_CHECKING:
    from deep_emotion.faces.framing import Framing

CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
JAFFE_CODES = {
    "AN": "angry",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
JAFFE_CLASSES = tuple(JAFFE_CODES.values())
FERG_CLASSES = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
FERG_CHARACTERS = ("aia", "bonnie", "jules", "malcolm", "mery", "ray")

_CKPLUS_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_JAFFE_NAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)


def _build(
    name: str,
    root: Path,
    files: list[Path],
    labels: list[int],
    subjects: list[str],
    classes: tuple[str, ...],
    protocols: tuple[str, ...],
    decode: Callable[[Path], np.ndarray] | None = None,
    tag: str = "",
) -> FaceDataset:
    if not files:
        raise DataLayoutError(f"{name}: no images found under {root}")

    def build() -> dict[str, np.ndarray]:
        return {"images": decode_many(files, decode or decode_grey)}

    images = cached_arrays(files_key(name + tag, root, files), build)["images"]
    return FaceDataset(
        name,
        images,
        np.array(labels, dtype=np.int64),
        classes,
        np.full(len(files), "", dtype="<U1"),
        np.array(subjects),
        protocols=protocols,
    )


def read_ckplus(root: str | Path) -> FaceDataset:
    """CK+48: `<class>/S<subject>_<sequence>_<frame>.png`, 48x48 grey, 7 classes (no neutral)."""
    root = require_dir(Path(root), "CK+")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataLayoutError(f"CK+: {root} has no class folders; expected {', '.join(CKPLUS_CLASSES)}")
    files, labels, subjects = [], [], []
    for d in class_dirs:
        if d.name.lower() not in CKPLUS_CLASSES:
            raise DataLayoutError(f"CK+: unknown class folder {d}; expected one of {', '.join(CKPLUS_CLASSES)}")
        for f in list_images(d):
            m = _CKPLUS_NAME.match(f.name)
            if not m:
                raise DataLayoutError(f"CK+: {f} does not match S<subject>_<sequence>_<frame>.png")
            files.append(f)
            labels.append(CKPLUS_CLASSES.index(d.name.lower()))
            subjects.append(m.group(1).upper())
    return _build("ckplus", root, files, labels, subjects, CKPLUS_CLASSES, ("random", "subject-folds"))


def read_jaffe(
    root: str | Path, crop_faces: bool = True, margin: float | None = None, framing: Framing | None = None
) -> FaceDataset:
    """JAFFE: `<subject>.<EMO><n>.<id>.tiff`, 256x256 uncropped photos. By default each face is found and
    cropped by the project's own face pipeline (faces.py, `margin` around MTCNN's box), like an upload;
    `crop_faces=False` shrinks the whole photo to 48x48. `framing` (faces.Framing) overrides `margin`."""
    root = require_dir(Path(root), "JAFFE")
    decode, tag = None, ""
    if crop_faces:
        from deep_emotion.faces.detect import largest_face_crop
        from deep_emotion.faces.framing import DEFAULT_MARGIN, Framing

        framing = framing or Framing(margin=DEFAULT_MARGIN if margin is None else margin)
        decode, tag = partial(largest_face_crop, framing=framing), f"-mtcnn-{framing.tag()}"
    files, labels, subjects = [], [], []
    for f in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".tif", ".tiff")):
        m = _JAFFE_NAME.match(f.name)
        if not m:
            raise DataLayoutError(f"JAFFE: {f.name} does not match <subject>.<EMO><n>.<id>.tiff")
        code = m.group(2).upper()
        if code not in JAFFE_CODES:
            raise DataLayoutError(f"JAFFE: {f.name} has unknown emotion code {code}; expected {', '.join(JAFFE_CODES)}")
        files.append(f)
        labels.append(JAFFE_CLASSES.index(JAFFE_CODES[code]))
        subjects.append(m.group(1).upper())
    if not files:
        raise DataLayoutError(f"JAFFE: no <subject>.<EMO><n>.<id>.tiff files in {root}")
    return _build(
        "jaffe", root, files, labels, subjects, JAFFE_CLASSES, ("paper", "subject-folds", "random"), decode, tag
    )


def read_ferg(root: str | Path) -> FaceDataset:
    """FERG-DB: `FERG_DB_256/<character>/<character>_<expression>/*.png` (root may be FERG_DB_256 or above)."""
    root = require_dir(Path(root), "FERG")
    if (root / "FERG_DB_256").is_dir():
        root = root / "FERG_DB_256"
    char_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not char_dirs:
        raise DataLayoutError(f"FERG: {root} has no character folders; expected {', '.join(FERG_CHARACTERS)}")
    files, labels, subjects = [], [], []
    for c in char_dirs:
        for e in sorted(p for p in c.iterdir() if p.is_dir()):
            prefix = c.name + "_"
            expr = e.name[len(prefix) :].lower() if e.name.startswith(prefix) else ""
            if expr not in FERG_CLASSES:
                raise DataLayoutError(
                    f"FERG: folder {e} is not <character>_<expression> with expression in {', '.join(FERG_CLASSES)}"
                )
            for f in list_images(e):
                files.append(f)
                labels.append(FERG_CLASSES.index(expr))
                subjects.append(c.name)
    return _build("ferg", root, files, labels, subjects, FERG_CLASSES, ("random", "subject-folds"))

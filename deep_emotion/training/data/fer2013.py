"""FER2013 in the three forms users download: fer2013.csv, Kaggle's icml_face_data.csv, Kaggle's image folders."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from deep_emotion.errors import DataLayoutError
from deep_emotion.training.data._cache import cached_arrays, files_key
from deep_emotion.training.data.base import FaceDataset, decode_many, list_images

# the emotion codes of the original CSV, in order; the folder layout is mapped onto the same order
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES = ("Training", "PublicTest", "PrivateTest")
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_")
_FOLDER_PART = {"train": "Training", "test": "Test"}


def read_fer2013(root: str | Path) -> FaceDataset:
    """Read FER2013 from a CSV file, a folder holding one, or the Kaggle `train/` `test/` image folders."""
    root = Path(root)
    if root.is_file():
        return _read_csv(root)
    if not root.is_dir():
        raise DataLayoutError(f"FER2013: {root} does not exist")
    for name in CSV_NAMES:
        if (root / name).is_file():
            return _read_csv(root / name)
    if (root / "train").is_dir() or (root / "test").is_dir():
        return _read_folders(root)
    raise DataLayoutError(
        f"FER2013: {root} holds neither {' nor '.join(CSV_NAMES)} nor the image folders "
        "train/<class>/*.jpg and test/<class>/*.jpg"
    )


def _dataset(images: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> FaceDataset:
    return FaceDataset(
        "fer2013",
        images,
        labels.astype(np.int64),
        CLASSES,
        groups,
        np.full(len(labels), "", dtype="<U1"),
        protocols=("paper", "random"),
    )


def _read_csv(path: Path) -> FaceDataset:
    def build() -> dict[str, np.ndarray]:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in ("emotion", "pixels", "Usage") if c not in header]
            if missing:
                raise DataLayoutError(
                    f"FER2013 CSV {path}: missing column(s) {missing}; expected emotion, pixels, Usage, found {header}"
                )
            ie, ip, iu = (header.index(c) for c in ("emotion", "pixels", "Usage"))
            images, labels, groups = [], [], []
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    label = int(row[ie])
                    pixels = np.array(row[ip].split(), dtype=np.uint8)
                except (ValueError, IndexError) as e:
                    raise DataLayoutError(f"FER2013 CSV {path}, line {line_no}: unreadable row ({e})") from e
                if not 0 <= label < len(CLASSES):
                    raise DataLayoutError(f"FER2013 CSV {path}, line {line_no}: emotion {label} is not in 0..6")
                if pixels.size != 48 * 48:
                    raise DataLayoutError(
                        f"FER2013 CSV {path}, line {line_no}: {pixels.size} pixel values, expected 2304 (48x48)"
                    )
                usage = row[iu].strip()
                if usage not in USAGES:
                    raise DataLayoutError(f"FER2013 CSV {path}, line {line_no}: Usage {usage!r}, expected {USAGES}")
                images.append(pixels.reshape(48, 48))
                labels.append(label)
                groups.append(usage)
        if not images:
            raise DataLayoutError(f"FER2013 CSV {path}: no rows")
        return {"images": np.stack(images), "labels": np.array(labels), "groups": np.array(groups)}

    a = cached_arrays(files_key("fer2013-csv", path.parent, [path]), build)
    return _dataset(a["images"], a["labels"], a["groups"])


def _read_folders(root: Path) -> FaceDataset:
    files: list[tuple[Path, int, str]] = []
    for part in ("train", "test"):
        part_dir = root / part
        if not part_dir.is_dir():
            raise DataLayoutError(f"FER2013: {root} has no {part}/ folder (expected train/<class>/ and test/<class>/)")
        subdirs = sorted(p for p in part_dir.iterdir() if p.is_dir())
        if not subdirs:
            raise DataLayoutError(f"FER2013: {part_dir} has no class folders; expected {', '.join(CLASSES)}")
        for d in subdirs:
            if d.name.lower() not in CLASSES:
                raise DataLayoutError(f"FER2013: unknown class folder {d}; expected one of {', '.join(CLASSES)}")
            for f in list_images(d):
                m = _PREFIX.match(f.name)
                files.append((f, CLASSES.index(d.name.lower()), m.group(1) if m else _FOLDER_PART[part]))
    if not files:
        raise DataLayoutError(f"FER2013: no images under {root}/train and {root}/test")

    def build() -> dict[str, np.ndarray]:
        return {
            "images": decode_many([f for f, _, _ in files]),
            "labels": np.array([y for _, y, _ in files]),
            "groups": np.array([g for _, _, g in files]),
        }

    a = cached_arrays(files_key("fer2013-folders", root, [f for f, _, _ in files]), build)
    return _dataset(a["images"], a["labels"], a["groups"])

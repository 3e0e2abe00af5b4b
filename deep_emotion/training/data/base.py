"""`FaceDataset`: images, labels, class names and the metadata that protocols split on."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from deep_emotion.errors import DataLayoutError
from deep_emotion.models.inputs import INPUT_SIZE, to_grey_square
from deep_emotion.training.data.splits import Split, make_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass
class FaceDataset:
    """All images of one data set, decoded to 48x48 grey uint8, with what the protocols need."""

    name: str
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into `classes`
    classes: tuple[str, ...]
    groups: np.ndarray  # (N,) str: the official part of each image ("Training", ...) or ""
    subjects: np.ndarray  # (N,) str: subject / character id, "" where unknown
    protocols: tuple[str, ...] = field(default=("random",))

    def __post_init__(self) -> None:
        n = len(self.images)
        if n == 0:
            raise DataLayoutError(f"{self.name}: no images found")
        if not (len(self.labels) == len(self.groups) == len(self.subjects) == n):
            raise ValueError("images, labels, groups and subjects must have one entry per image")

    def __len__(self) -> int:
        return len(self.images)

    def split(self, protocol: str | None = None, seed: int = 0, fold: int | None = None, n_folds: int = 10) -> Split:
        return make_split(self, protocol or self.protocols[0], seed, fold, n_folds)

    def subset(self, idx: np.ndarray) -> FaceDataset:
        return FaceDataset(
            self.name,
            self.images[idx],
            self.labels[idx],
            self.classes,
            self.groups[idx],
            self.subjects[idx],
            self.protocols,
        )


def decode_grey(path: Path, size: int = INPUT_SIZE, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Decode one data-set image to uint8 (size, size) grey; a clear error naming the file if it fails."""
    try:
        with Image.open(path) as im:
            im.load()
            if box is not None and box != (0, 0) + im.size:
                im = im.crop(box)
            return to_grey_square(im, size)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataLayoutError(f"cannot decode image {path}: {e}") from e


def decode_many(paths: list[Path], decode: Callable[[Path], np.ndarray] = decode_grey) -> np.ndarray:
    """Decode a list of files in a few threads (PIL releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(decode, paths, chunksize=256))
    return np.stack(arrays) if arrays else np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataLayoutError(f"{what}: {path} is not a directory")
    return path

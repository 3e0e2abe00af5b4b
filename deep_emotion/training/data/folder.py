"""A generic `<class>/<image>` folder: class names are the sorted folder names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deep_emotion.errors import DataLayoutError
from deep_emotion.training.data._cache import cached_arrays, files_key
from deep_emotion.training.data.base import FaceDataset, decode_many, list_images, require_dir


def read_folder(root: str | Path) -> FaceDataset:
    root = require_dir(Path(root), "image folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataLayoutError(f"image folder: {root} has no class folders; expected <class>/<image>")
    files, labels = [], []
    for i, d in enumerate(class_dirs):
        images = list_images(d)
        if not images:
            raise DataLayoutError(f"image folder: class folder {d} holds no images")
        files += images
        labels += [i] * len(images)
    a = cached_arrays(files_key("folder", root, files), lambda: {"images": decode_many(files)})
    n = len(files)
    return FaceDataset(
        "folder",
        a["images"],
        np.array(labels, dtype=np.int64),
        tuple(d.name for d in class_dirs),
        np.full(n, "", dtype="<U1"),
        np.full(n, "", dtype="<U1"),
        protocols=("random",),
    )

"""FERPlus (Barsoum et al. 2016): FER2013 faces relabelled by 10 annotators, majority-vote labels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from deep_emotion.errors import DataLayoutError
from deep_emotion.training.data._cache import cached_arrays, files_key
from deep_emotion.training.data.base import FaceDataset, decode_grey

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = CLASSES + ("unknown", "NF")
PARTS = {"FER2013Train": "Train", "FER2013Valid": "Valid", "FER2013Test": "Test"}


def majority_label(votes: list[float]) -> int | None:
    """FERPlus's "majority" rule: drop single votes (outliers), then the top emotion must hold more than
    half of the remaining votes and be neither unknown nor not-a-face; otherwise the image is left out."""
    votes = [v if v > 1 else 0.0 for v in votes]
    total, top = sum(votes), max(votes)
    if total == 0 or top <= 0.5 * total:
        return None
    idx = int(np.argmax(votes))
    return idx if idx < len(CLASSES) else None


def _parse_box(text: str) -> tuple[int, int, int, int]:
    nums = [int(t) for t in text.strip("() ").split(",")]
    if len(nums) != 4:
        raise ValueError(text)
    return tuple(nums)  # type: ignore[return-value]


def read_ferplus(root: str | Path) -> FaceDataset:
    root = Path(root)
    missing = [p for p in PARTS if not (root / p / "label.csv").is_file()]
    if missing:
        raise DataLayoutError(
            f"FERPlus: {root} lacks {', '.join(m + '/label.csv' for m in missing)}; expected "
            "FER2013Train/, FER2013Valid/, FER2013Test/, each with fer*.png and a header-less label.csv"
        )
    entries: list[tuple[Path, tuple[int, int, int, int], int, str]] = []
    for folder, part in PARTS.items():
        label_csv = root / folder / "label.csv"
        with open(label_csv, newline="") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if len(row) != 2 + len(VOTE_COLUMNS):
                    raise DataLayoutError(
                        f"FERPlus {label_csv}, line {line_no}: {len(row)} columns, expected 12 "
                        f"(image, face box, votes for {', '.join(VOTE_COLUMNS)})"
                    )
                try:
                    box, votes = _parse_box(row[1]), [float(v) for v in row[2:]]
                except ValueError as e:
                    raise DataLayoutError(f"FERPlus {label_csv}, line {line_no}: unreadable row ({e})") from e
                label = majority_label(votes)
                if label is None:
                    continue
                image = root / folder / row[0]
                if not image.is_file():
                    raise DataLayoutError(f"FERPlus {label_csv}, line {line_no}: image {image} is missing")
                entries.append((image, box, label, part))
    if not entries:
        raise DataLayoutError(f"FERPlus: no image under {root} has a majority label")

    def build() -> dict[str, np.ndarray]:
        return {
            "images": np.stack([decode_grey(p, box=b) for p, b, _, _ in entries]),
            "labels": np.array([y for _, _, y, _ in entries]),
            "groups": np.array([g for _, _, _, g in entries]),
        }

    key_files = [root / p / "label.csv" for p in PARTS] + [p for p, _, _, _ in entries]
    a = cached_arrays(files_key("ferplus", root, key_files), build)
    return FaceDataset(
        "ferplus",
        a["images"],
        a["labels"].astype(np.int64),
        CLASSES,
        a["groups"],
        np.full(len(a["labels"]), "", dtype="<U1"),
        protocols=("official", "random"),
    )

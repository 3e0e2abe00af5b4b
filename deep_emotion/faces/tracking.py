"""Following faces from frame to frame: an IoU tracker whose ids survive short misses, and the weight of an
exponential moving average with a half-life in seconds (smoothed probabilities)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from deep_emotion.faces.detect import iou
from deep_emotion.faces.framing import Box

MATCH_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much ...
MAX_GAP_SECONDS = 1.0  # ... and the track was seen at most this long ago


@dataclass
class _Track:
    id: int
    box: Box
    seen: float
    landmarks: np.ndarray | None = None


class FaceTracker:
    """Face ids across frames: each face takes the id of the unclaimed track whose last box overlaps it most
    (IoU >= `min_iou`), or else whose centre is nearest, within one face's width (a fast move, or a low
    sampling rate); otherwise a new id. A track not seen for more than `max_gap` seconds ends (its id is never
    reused)."""

    def __init__(self, min_iou: float = MATCH_IOU, max_gap: float = MAX_GAP_SECONDS) -> None:
        self.min_iou, self.max_gap = min_iou, max_gap
        self.tracks: list[_Track] = []
        self.next_id = 1

    def update(self, time: float, boxes: list[Box], landmarks: list[np.ndarray | None] | None = None) -> list[int]:
        """Ids for `boxes` (found at `time`), in their order."""
        self.tracks = [t for t in self.tracks if time - t.seen <= self.max_gap]
        marks = landmarks or [None] * len(boxes)
        ids: list[int | None] = [None] * len(boxes)
        claimed: set[int] = set()

        def claim(pairs: Iterable[tuple[int, int]]) -> None:  # (box, track), best first
            for i, k in pairs:
                if ids[i] is None and k not in claimed:
                    ids[i] = self.tracks[k].id
                    claimed.add(k)
                    self.tracks[k] = _Track(ids[i], boxes[i], time, marks[i])

        def centre(b: Box) -> tuple[float, float]:
            return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2

        def width(i: int, k: int) -> float:
            return max(boxes[i][2] - boxes[i][0], self.tracks[k].box[2] - self.tracks[k].box[0], 1.0)

        pairs = [(i, k) for i in range(len(boxes)) for k in range(len(self.tracks))]
        overlaps = {(i, k): iou(boxes[i], self.tracks[k].box) for i, k in pairs}
        claim(sorted((p for p in pairs if overlaps[p] >= self.min_iou), key=lambda p: -overlaps[p]))
        distance = {(i, k): math.dist(centre(boxes[i]), centre(self.tracks[k].box)) for i, k in pairs}
        claim(sorted((p for p in pairs if distance[p] <= width(*p)), key=distance.get))  # no overlap: nearest
        for i, b in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.tracks.append(_Track(self.next_id, b, time, marks[i]))
                self.next_id += 1
        return [int(i) for i in ids]


def smoothing_weight(dt: float, half_life: float) -> float:
    """The weight of a new value in an exponential moving average with this half-life (seconds): 1 - 2^(-dt/h)."""
    return 1.0 if half_life <= 0 else 1.0 - 0.5 ** (max(dt, 0.0) / half_life)

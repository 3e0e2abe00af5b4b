"""Faces of a clip over time: sampled frames, faces found in batches and followed (`FaceTracker`), every model's
(optionally smoothed) probabilities per face and frame, as rows and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deep_emotion.faces.detect import Face
from deep_emotion.faces.framing import Box, Framing, crop_face
from deep_emotion.faces.tracking import MAX_GAP_SECONDS, FaceTracker, smoothing_weight
from deep_emotion.video.clips import (
    DEFAULT_FPS,
    VIDEO_FRAMING,
    Source,
    VideoInfo,
    _label,
    _readable,
    check_fps,
    probe,
    sample_frames,
)


@dataclass
class FaceAtTime:
    """One face in one sampled frame, as every model reads it."""

    time: float
    frame: int  # the sampled frame's number (0, 1, ...)
    face: int  # the tracker's id (1, 2, ...)
    box: Box
    face_probability: float
    detected: bool  # False: the box was carried over from the last detection (see `detect_every`)
    probabilities: dict[str, np.ndarray] = field(repr=False)  # model -> (classes,), smoothed when asked


@dataclass
class VideoAnalysis:
    info: VideoInfo
    fps: float
    classes: dict[str, list[str]]  # model -> its classes
    rows: list[FaceAtTime]
    frames: int  # frames sampled
    smooth: float  # the half-life used (seconds; 0: none)

    def faces(self) -> list[int]:
        return sorted({r.face for r in self.rows})

    def records(self) -> list[dict[str, Any]]:
        """One flat record per (time, face, model): box, top class and every class's probability."""
        out = []
        for r in self.rows:
            for model, p in r.probabilities.items():
                classes = self.classes[model]
                out.append(
                    {
                        "time_s": round(r.time, 3),
                        "frame": r.frame,
                        "face": r.face,
                        "model": model,
                        "x0": round(r.box[0], 1),
                        "y0": round(r.box[1], 1),
                        "x1": round(r.box[2], 1),
                        "y1": round(r.box[3], 1),
                        "face_probability": round(r.face_probability, 4),
                        "detected": r.detected,
                        "top": classes[int(np.argmax(p))],
                        **{c: round(float(v), 4) for c, v in zip(classes, p)},
                    }
                )
        return out

    def columns(self) -> list[str]:
        classes = list(dict.fromkeys(c for cs in self.classes.values() for c in cs))
        return [
            "time_s",
            "frame",
            "face",
            "model",
            "x0",
            "y0",
            "x1",
            "y1",
            "face_probability",
            "detected",
            "top",
            *classes,
        ]

    def write_csv(self, target: str | Path | io.TextIOBase) -> None:
        """The records as CSV (a class a model does not have: empty)."""

        def write(f) -> None:
            w = csv.DictWriter(f, fieldnames=self.columns(), restval="")
            w.writeheader()
            w.writerows(self.records())

        if isinstance(target, (str, Path)):
            with open(target, "w", newline="") as f:
                write(f)
        else:
            write(target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": {k: getattr(self.info, k) for k in self.info.__dataclass_fields__},
            "fps": self.fps,
            "frames_sampled": self.frames,
            "smoothing_half_life_s": self.smooth,
            "classes": self.classes,
            "faces": self.faces(),
            "records": self.records(),
        }


def _batches(frames: Iterator[tuple[float, Image.Image]], n: int) -> Iterator[list[tuple[float, Image.Image]]]:
    batch: list[tuple[float, Image.Image]] = []
    for item in frames:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


FindFaces = Callable[[list[Image.Image]], list[list[Face]]]  # faces of each frame, largest first
ReadCrops = Callable[[list[np.ndarray]], dict[str, np.ndarray]]  # model -> probabilities (N, classes) of 48x48 crops


def analyze_video(
    source: Source,
    find: FindFaces,
    read: ReadCrops,
    classes: Mapping[str, list[str]],
    fps: float = DEFAULT_FPS,
    name: str | None = None,
    detect_every: int = 1,
    smooth: float = 0.0,
    batch: int = 8,
    framing: Framing = VIDEO_FRAMING,
    progress: Callable[[float, int], None] | None = None,
) -> VideoAnalysis:
    """Every face of every sampled frame, followed across frames, read by every model. `find` finds the faces of
    frames and `read` reads crops with every model (`Pipeline.analyze_clip` passes its own); `classes`: each
    model's class names. `smooth`: half-life in seconds of an exponential moving average of each face's
    probabilities (0: raw). `progress(time, frames)` is called after each batch."""
    if not classes:
        raise ValueError("choose at least one model")
    check_fps(fps)
    if not (isinstance(detect_every, int) and detect_every >= 1):
        raise ValueError(f"detect_every must be a whole number >= 1, not {detect_every!r}")
    if not (math.isfinite(smooth) and smooth >= 0):
        raise ValueError(f"smooth must be a half-life in seconds >= 0, not {smooth!r}")
    label = _label(source, name)
    source = _readable(source)
    info = probe(source, label)
    # a face unseen for more than a second ends, or for more than the time between 1.5 looks at sparse sampling
    tracker = FaceTracker(max_gap=max(MAX_GAP_SECONDS, 1.5 * detect_every / fps))
    looked = -math.inf  # the time of the last frame searched for faces
    rows: list[FaceAtTime] = []
    last: dict[tuple[int, str], tuple[float, np.ndarray]] = {}  # (face, model) -> (time, smoothed probabilities)
    frames = 0
    with closing(sample_frames(source, fps, label)) as sampled:
        for part in _batches(sampled, batch):
            look = [i for i in range(len(part)) if (frames + i) % detect_every == 0]
            found = find([part[i][1] for i in look])
            by_frame: dict[int, list[Face]] = dict(zip(look, found))
            faces: list[tuple[int, int, Face, bool]] = []  # (frame in part, id, face, detected)
            for i, (t, image) in enumerate(part):
                if i in by_frame:
                    ids = tracker.update(t, [f.box for f in by_frame[i]], [f.landmarks for f in by_frame[i]])
                    faces += [(i, fid, f, True) for fid, f in zip(ids, by_frame[i])]
                    looked = t
                else:  # between searches: the faces of the last one keep their boxes, cropped from this frame
                    for track in (tr for tr in tracker.tracks if tr.seen == looked):
                        crop = crop_face(image, track.box, landmarks=track.landmarks, framing=framing)
                        faces.append((i, track.id, Face(track.box, 0.0, crop, track.landmarks), False))
            probs = read([f.crop for _, _, f, _ in faces]) if faces else {}
            for j, (i, fid, face, detected) in enumerate(faces):
                t, per_model = part[i][0], {}
                for m in classes:
                    p = probs[m][j]
                    if smooth > 0 and (fid, m) in last:
                        t0, prev = last[(fid, m)]
                        p = prev + smoothing_weight(t - t0, smooth) * (p - prev)
                    last[(fid, m)] = (t, p)
                    per_model[m] = p
                rows.append(
                    FaceAtTime(
                        t, frames + i, fid, tuple(float(v) for v in face.box), face.probability, detected, per_model
                    )
                )
            frames += len(part)
            if progress:
                progress(part[-1][0], frames)
    return VideoAnalysis(info, float(fps), {m: list(c) for m, c in classes.items()}, rows, frames, float(smooth))

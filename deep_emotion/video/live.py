"""Live frames (a webcam stream): each frame's faces found on a small copy, followed across frames, read by one
model with smoothed probabilities and drawn on the frame; the largest face's occlusion map in a corner.

`LiveReader.process` knows nothing of where frames come from; the app feeds it from streamlit-webrtc.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from deep_emotion.explain import render
from deep_emotion.faces.detect import Face
from deep_emotion.faces.framing import crop_face
from deep_emotion.faces.tracking import FaceTracker, smoothing_weight
from deep_emotion.results import AnalysisOptions
from deep_emotion.video.clips import VIDEO_FRAMING

if TYPE_CHECKING:
    from deep_emotion.pipeline import Pipeline

LIVE_DETECT_SIDE = 320  # a 640x480 webcam frame: faces from ~40 px are found
LIVE_WINDOW, LIVE_STRIDE = 12, 6  # the live map: a coarser occlusion grid (7x7 windows) than the photo's default
LIVE_HALF_LIFE = 0.5  # seconds: the smoothing of each face's probabilities
MAP_SHARE = 0.34  # the map tile's side as a share of the frame's height


@dataclass
class LiveFace:
    face: int  # the tracker's id
    box: tuple[float, float, float, float]
    top: str
    probability: float


def free_corner(size: tuple[int, int], tile: tuple[int, int], boxes: list) -> tuple[int, int]:
    """The top-left point of the frame's corner where a tile of `tile` size hides the least of the face boxes
    (top right on a tie)."""
    (w, h), (tw, th) = size, tile
    corners = [(w - tw, 0), (0, 0), (w - tw, h - th), (0, h - th)]

    def hidden(c: tuple[int, int]) -> float:
        return sum(
            max(0.0, min(c[0] + tw, b[2]) - max(c[0], b[0])) * max(0.0, min(c[1] + th, b[3]) - max(c[1], b[1]))
            for b in boxes
        )

    return min(corners, key=hidden)


class LiveReader:
    """One stream's state: the tracker and each face's smoothed probabilities, for one model of a pipeline.
    Thread-safe (one frame at a time). Made by `Pipeline.live`."""

    def __init__(
        self,
        pipeline: Pipeline,
        model: str,
        smooth: float = LIVE_HALF_LIFE,
        show_map: bool = True,
        window: int = LIVE_WINDOW,
        stride: int = LIVE_STRIDE,
        detect_side: int = LIVE_DETECT_SIDE,
    ) -> None:
        self.pipeline, self.name = pipeline, model
        self.classes = list(pipeline.models[model].classes)
        self.smooth, self.show_map, self.window, self.stride = smooth, show_map, window, stride
        self.detector = replace(pipeline.detector, framing=VIDEO_FRAMING, detect_side=detect_side, whole_picture=False)
        self.tracker = FaceTracker()
        self.last: dict[int, tuple[float, np.ndarray]] = {}
        self.lock = threading.Lock()

    def read(self, image: Image.Image, time: float) -> tuple[list[LiveFace], list[Face]]:
        """The faces of one frame taken at `time` seconds, largest first, and their Face records."""
        if self.last and time < max(t for t, _ in self.last.values()):  # a restarted stream: start afresh
            self.tracker, self.last = FaceTracker(), {}
        faces = self.detector(image)
        ids = self.tracker.update(time, [f.box for f in faces], [f.landmarks for f in faces])
        probs = self.pipeline.read_crops([f.crop for f in faces], [self.name])[self.name] if faces else []
        alive = {t.id for t in self.tracker.tracks}
        self.last = {k: v for k, v in self.last.items() if k in alive}
        out = []
        for fid, f, p in zip(ids, faces, probs):
            if self.smooth > 0 and fid in self.last:
                t0, prev = self.last[fid]
                p = prev + smoothing_weight(time - t0, self.smooth) * (p - prev)
            self.last[fid] = (time, p)
            k = int(np.argmax(p))
            out.append(LiveFace(fid, f.box, self.classes[k], float(p[k])))
        return out, faces

    def face_map(self, image: Image.Image, face: Face, target: str, number: int = 1) -> Image.Image:
        """The occlusion drop map of `face` for class `target`, over the face, with its colour bar."""
        options = AnalysisOptions(("occlusion-drop",), self.window, self.stride, target)
        view = self.pipeline.explain(face, [self.name], options)[self.name]
        picture = crop_face(image, face.box, size=144, landmarks=face.landmarks, framing=VIDEO_FRAMING)
        return render.map_tile(picture, view.maps["occlusion-drop"], f"face {number}: {target}", scale=1, text_size=14)

    def process(self, image: Image.Image, time: float) -> tuple[Image.Image, list[LiveFace]]:
        """The frame with every face's box, id and top class (smoothed) drawn, and the largest face's map in the
        corner that hides the fewest faces when `show_map`."""
        with self.lock:
            read, faces = self.read(image, time)
            out = render.draw_boxes(
                image,
                [f.box for f in read],
                None,
                [f"{f.top} {f.probability:.0%}" for f in read],
                numbers=[f.face for f in read],
            )
            if self.show_map and read:
                tile = self.face_map(image, faces[0], read[0].top, read[0].face)
                side = max(96, round(MAP_SHARE * image.height))
                tile = tile.resize((side, round(side * tile.height / tile.width)), Image.Resampling.BILINEAR)
                out.paste(tile, free_corner(out.size, tile.size, [f.box for f in read]))
            return out, read

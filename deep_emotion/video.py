"""Video clips: frames sampled at a chosen rate, faces followed across frames, every model's probabilities
over time.

    info = probe("clip.mp4")                       # refused here, before decoding, when over the caps
    result = analyze_video("clip.mp4", {"fer2013": load_checkpoint("fer2013", posthoc=True)}, fps=4)
    result.write_csv("clip.csv")

Frames are decoded one at a time with PyAV (never the whole clip in memory) and taken at `fps`; faces are
found with MTCNN on a copy whose longer side is at most `detect_side` pixels, batched over `batch` frames,
on every `detect_every`-th sampled frame (in between, each followed face keeps its last box); crops come from the
full frame with the shipped framing. `FaceTracker` gives each face an id that survives short misses.
"""

from __future__ import annotations

import csv
import io
import math
from contextlib import closing
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image

from .errors import DeepEmotionError
from .evaluation import predict_proba
from .faces import DEFAULT_FRAMING, Box, Face, Framing, crop_face, detect_faces_batch, iou

VIDEO_TYPES = ("mp4", "webm", "mov", "avi", "gif", "mkv", "m4v")
MAX_BYTES = 500 * 1024 * 1024
MAX_SECONDS = 15 * 60.0  # longer clips are refused (cut them first)
MAX_SIDE = 3840  # frames wider or taller than 4K are refused
MAX_FPS = 30.0  # sampling rate accepted
# containers read (FFmpeg's names); others (playlists such as HLS, which fetch other files, raw streams,
# image sequences) are refused
CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "gif")
DEFAULT_FPS = 4.0
DETECT_SIDE = 480  # faces are found on a copy this large (a 640x480 frame: faces from ~27 px are found)
MATCH_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much ...
MAX_GAP_SECONDS = 1.0  # ... and the track was seen at most this long ago
# video frames skip MTCNN's retries (context added, turned copies): they are for photos that are a face crop
VIDEO_FRAMING = replace(DEFAULT_FRAMING, context_retry=False, rotate_retry=0.0)

Source = str | Path | bytes | bytearray | memoryview | BinaryIO


class VideoLoadError(DeepEmotionError):
    """A video file cannot be read, is not a video, or is over the caps."""


@dataclass(frozen=True)
class VideoInfo:
    name: str
    width: int  # as stored (a clip with a display rotation is shown turned: its frames come out upright)
    height: int
    seconds: float | None  # None: the file does not say (checked while decoding)
    frame_rate: float | None
    codec: str
    container: str


def _label(source: Source, name: str | None) -> str:
    return name or (str(source) if isinstance(source, (str, Path)) else "upload")


def _open(source: Source, label: str):
    """av.open on a path, bytes or file object, or a VideoLoadError that names the file."""
    import av

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise VideoLoadError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise VideoLoadError(f"{label}: the file is empty")
        if path.stat().st_size > MAX_BYTES:
            raise VideoLoadError(f"{label}: file is larger than {MAX_BYTES // 2**20} MB")
        target: Any = str(path)
    else:
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read(MAX_BYTES + 1)
        if not data:
            raise VideoLoadError(f"{label}: the file is empty")
        if len(data) > MAX_BYTES:
            raise VideoLoadError(f"{label}: file is larger than {MAX_BYTES // 2**20} MB")
        target = io.BytesIO(data)
    try:
        # local files only: a playlist inside an upload must not make FFmpeg fetch anything
        container = av.open(target, metadata_errors="ignore", options={"protocol_whitelist": "file"})
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
        raise VideoLoadError(f"{label}: not a readable video: damaged, truncated or of an unknown kind "
                             f"({type(e).__name__})") from e
    fmt = container.format.name
    problem = None
    if fmt.endswith("_pipe") or fmt == "image2":
        problem = "this is a still image, not a video: analyse it as a photo"
    elif fmt not in CONTAINERS:
        problem = f"videos in {fmt!r} files are not read; use mp4, webm, mov, avi, mkv or gif"
    elif not [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]:
        problem = "the file holds no video stream (at most a cover picture)"
    elif container.streams.video[0].codec_context is None:
        problem = "its video codec cannot be decoded here"
    if problem:
        container.close()
        raise VideoLoadError(f"{label}: {problem}")
    return container


def _info(container, label: str) -> VideoInfo:
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(label, width, height, seconds, float(rate) if rate else None, stream.codec_context.name,
                     container.format.name)


def _check(info: VideoInfo) -> None:
    if info.width < 1 or info.height < 1:
        raise VideoLoadError(f"{info.name}: the video has no frame size")
    if max(info.width, info.height) > MAX_SIDE:
        raise VideoLoadError(f"{info.name}: {info.width}x{info.height} frames are larger than the {MAX_SIDE} px "
                             "accepted; scale the video down first")
    if info.seconds is not None and info.seconds > MAX_SECONDS:
        raise VideoLoadError(f"{info.name}: {info.seconds / 60:.1f} min is longer than the {MAX_SECONDS / 60:.0f} min "
                             "accepted; cut the clip first")


def probe(source: Source, name: str | None = None) -> VideoInfo:
    """The clip's size, length, frame rate and codec from its header; a VideoLoadError when it is not a video or
    is over the caps (MAX_BYTES, MAX_SIDE, MAX_SECONDS) — nothing is decoded."""
    label = _label(source, name)
    container = _open(source, label)
    try:
        info = _info(container, label)
    finally:
        container.close()
    _check(info)
    return info


def check_fps(fps: float) -> None:
    """A ValueError unless 0 < fps <= MAX_FPS."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise ValueError(f"fps must be a number in (0, {MAX_FPS:g}], not {fps!r}")


def _frames(source: Source, label: str, start: float = 0.0, seek: bool = True) -> Iterator[tuple[float, Image.Image]]:
    """(time in seconds, upright RGB frame) for every frame from about `start` on (a seek lands on the key frame
    before it; where it lands after `start`, decoding starts again from the beginning), one at a time; a damaged
    stream ends in a VideoLoadError that names the file and the time."""
    import av

    container = _open(source, label)
    t = start
    try:
        info = _info(container, label)
        _check(info)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        seeked = bool(seek and start > 0 and stream.time_base)
        index, rate = 0, info.frame_rate or 25.0
        if seeked:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else index / rate
            index += 1
            if seeked and index == 1 and t > start + 1e-3:
                break  # landed after `start`: read from the beginning (below)
            if t > MAX_SECONDS:
                raise VideoLoadError(f"{label}: longer than the {MAX_SECONDS / 60:.0f} min accepted; cut the clip first")
            if max(frame.width, frame.height) > MAX_SIDE:
                raise VideoLoadError(f"{label}: frames of {frame.width}x{frame.height} at {t:.1f} s are larger than "
                                     f"the {MAX_SIDE} px accepted")
            yield float(t), upright(frame.to_image(), frame.rotation)
        else:
            return
    except (av.error.FFmpegError, ValueError, MemoryError) as e:
        raise VideoLoadError(f"{label}: the video is damaged or truncated near {t:.1f} s ({type(e).__name__})") from e
    finally:
        container.close()
    yield from _frames(source, label, start, seek=False)


def _readable(source: Source) -> str | Path | bytes:
    """A path or the bytes: a file object is read once, so that the clip can be opened more than once."""
    if isinstance(source, (str, Path, bytes)):
        return source
    return bytes(source) if isinstance(source, (bytearray, memoryview)) else source.read(MAX_BYTES + 1)


def sample_frames(source: Source, fps: float = DEFAULT_FPS, name: str | None = None,
                  start: float = 0.0) -> Iterator[tuple[float, Image.Image]]:
    """(time in seconds, upright RGB frame) at `fps` from `start` on: the first frame at or after each multiple
    of 1/fps."""
    check_fps(fps)
    step, next_k = 1.0 / fps, math.ceil(start * fps - 1e-9)
    with closing(_frames(_readable(source), _label(source, name), start)) as frames:
        for t, image in frames:
            if t + 1e-6 < next_k * step:
                continue
            next_k = math.floor(t * fps + 1e-6) + 1
            yield t, image


TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180,
         -90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_270}


def upright(image: Image.Image, rotation: float | None) -> Image.Image:
    """A decoded frame turned as its container says it is shown (phones record portrait clips as landscape
    frames with a display rotation: `rotation` degrees counter-clockwise)."""
    if not rotation:
        return image
    turn = TURNS.get(int(round(rotation)))
    return image.transpose(turn) if turn is not None else image.rotate(rotation, expand=True)


def frame_at(source: Source, time: float, name: str | None = None) -> tuple[float, Image.Image]:
    """The first frame at or after `time` seconds (the frame a timeline's point was computed on), and its time."""
    with closing(_frames(_readable(source), _label(source, name), start=max(0.0, time - 1e-3))) as frames:
        for t, image in frames:
            if t + 1e-3 >= time:
                return t, image
    raise VideoLoadError(f"{_label(source, name)}: no frame at {time:.2f} s")


@dataclass
class _Track:
    id: int
    box: Box
    seen: float
    landmarks: np.ndarray | None = None


class FaceTracker:
    """Face ids across frames: each face takes the id of the unclaimed track whose last box overlaps it most
    (IoU >= `min_iou`), or else whose centre is nearest, within one face's width (a fast move, or a low
    sampling rate); otherwise a new id. A track not seen for more than `max_gap` seconds ends (its id is never reused)."""

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
                out.append({"time_s": round(r.time, 3), "frame": r.frame, "face": r.face, "model": model,
                            "x0": round(r.box[0], 1), "y0": round(r.box[1], 1), "x1": round(r.box[2], 1),
                            "y1": round(r.box[3], 1), "face_probability": round(r.face_probability, 4),
                            "detected": r.detected, "top": classes[int(np.argmax(p))],
                            **{c: round(float(v), 4) for c, v in zip(classes, p)}})
        return out

    def columns(self) -> list[str]:
        classes = list(dict.fromkeys(c for cs in self.classes.values() for c in cs))
        return ["time_s", "frame", "face", "model", "x0", "y0", "x1", "y1", "face_probability", "detected", "top",
                *classes]

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
        return {"video": {k: getattr(self.info, k) for k in self.info.__dataclass_fields__}, "fps": self.fps,
                "frames_sampled": self.frames, "smoothing_half_life_s": self.smooth, "classes": self.classes,
                "faces": self.faces(), "records": self.records()}


def _batches(frames: Iterator[tuple[float, Image.Image]], n: int) -> Iterator[list[tuple[float, Image.Image]]]:
    batch: list[tuple[float, Image.Image]] = []
    for item in frames:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_faces(models: Mapping[str, tuple[Any, dict]], crops: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each model's probabilities (N, classes) for the crops, one batch per model (under the model's lock: the
    app's Grad-CAM hooks a shared model's layer while it explains a face)."""
    from .analysis import model_lock

    out = {}
    for name, (model, _) in models.items():
        with model_lock(model):
            out[name] = predict_proba(model, np.stack(crops)) if crops else np.zeros((0, 0))
    return out


def analyze_video(source: Source, models: Mapping[str, tuple[Any, dict]], fps: float = DEFAULT_FPS,
                  name: str | None = None, detect_every: int = 1, smooth: float = 0.0, batch: int = 8,
                  detect_side: int = DETECT_SIDE, framing: Framing = VIDEO_FRAMING,
                  progress: Callable[[float, int], None] | None = None) -> VideoAnalysis:
    """Every face of every sampled frame, followed across frames, read by every model (see the module's
    docstring). `smooth`: half-life in seconds of an exponential moving average of each face's probabilities
    (0: raw). `progress(time, frames)` is called after each batch."""
    if not models:
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
            found = detect_faces_batch([part[i][1] for i in look], framing=framing, detect_side=detect_side)
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
            probs = _read_faces(models, [f.crop for _, _, f, _ in faces])
            for j, (i, fid, face, detected) in enumerate(faces):
                t, per_model = part[i][0], {}
                for m in models:
                    p = probs[m][j]
                    if smooth > 0 and (fid, m) in last:
                        t0, prev = last[(fid, m)]
                        p = prev + smoothing_weight(t - t0, smooth) * (p - prev)
                    last[(fid, m)] = (t, p)
                    per_model[m] = p
                rows.append(FaceAtTime(t, frames + i, fid, tuple(float(v) for v in face.box), face.probability,
                                       detected, per_model))
            frames += len(part)
            if progress:
                progress(part[-1][0], frames)
    return VideoAnalysis(info, float(fps), {m: list(card["classes"]) for m, (_, card) in models.items()}, rows,
                         frames, float(smooth))


def write_clip(path: str | Path, frames: list[Image.Image] | Iterator[Image.Image], fps: float = 10.0,
               codec: str | None = None) -> Path:
    """Encode RGB frames (all one size) into a clip (the codec from the extension: mp4/mov/mkv H.264, webm VP9,
    avi MPEG-4, gif GIF). For tests, examples and benchmarks."""
    import av

    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    codec = codec or {"webm": "libvpx-vp9", "avi": "mpeg4", "gif": "gif"}.get(ext, "libx264")
    with av.open(str(path), "w") as out:
        stream = None
        for image in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height = image.width // 2 * 2, image.height // 2 * 2
                stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
            image = image.convert("RGB").crop((0, 0, stream.width, stream.height))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return path

"""Video clips read and written with PyAV, within caps (size, length, frame size): probing, frames sampled at a
chosen rate, a frame at a time, upright frames, and writing a clip (tests, the example clip).

    info = probe("clip.mp4")                       # refused here, before decoding, when over the caps
    result = analyze_video("clip.mp4", {"fer2013": load_checkpoint("fer2013", posthoc=True)}, fps=4)
    result.write_csv("clip.csv")

Frames are decoded one at a time with PyAV (never the whole clip in memory) and taken at `fps`; faces are
found with MTCNN on a copy whose longer side is at most `detect_side` pixels, batched over `batch` frames,
on every `detect_every`-th sampled frame (in between, each followed face keeps its last box); crops come from the
full frame with the shipped framing. `FaceTracker` gives each face an id that survives short misses.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from deep_emotion.errors import DeepEmotionError
from deep_emotion.faces.framing import DEFAULT_FRAMING

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
        raise VideoLoadError(
            f"{label}: not a readable video: damaged, truncated or of an unknown kind ({type(e).__name__})"
        ) from e
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
    return VideoInfo(
        label, width, height, seconds, float(rate) if rate else None, stream.codec_context.name, container.format.name
    )


def _check(info: VideoInfo) -> None:
    if info.width < 1 or info.height < 1:
        raise VideoLoadError(f"{info.name}: the video has no frame size")
    if max(info.width, info.height) > MAX_SIDE:
        raise VideoLoadError(
            f"{info.name}: {info.width}x{info.height} frames are larger than the {MAX_SIDE} px "
            "accepted; scale the video down first"
        )
    if info.seconds is not None and info.seconds > MAX_SECONDS:
        raise VideoLoadError(
            f"{info.name}: {info.seconds / 60:.1f} min is longer than the {MAX_SECONDS / 60:.0f} min "
            "accepted; cut the clip first"
        )


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
                raise VideoLoadError(
                    f"{label}: longer than the {MAX_SECONDS / 60:.0f} min accepted; cut the clip first"
                )
            if max(frame.width, frame.height) > MAX_SIDE:
                raise VideoLoadError(
                    f"{label}: frames of {frame.width}x{frame.height} at {t:.1f} s are larger than "
                    f"the {MAX_SIDE} px accepted"
                )
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


def sample_frames(
    source: Source, fps: float = DEFAULT_FPS, name: str | None = None, start: float = 0.0
) -> Iterator[tuple[float, Image.Image]]:
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


TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    -180: Image.Transpose.ROTATE_180,
    -90: Image.Transpose.ROTATE_270,
    270: Image.Transpose.ROTATE_270,
}


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


def write_clip(
    path: str | Path, frames: list[Image.Image] | Iterator[Image.Image], fps: float = 10.0, codec: str | None = None
) -> Path:
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

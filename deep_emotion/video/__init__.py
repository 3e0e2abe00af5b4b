"""Faces over time: video clips read with PyAV (`clips`), analysed frame by frame (`analysis`), and live
frames (`live`). Front ends reach these through `deep_emotion.Pipeline`."""

from deep_emotion.video.analysis import FaceAtTime, VideoAnalysis, analyze_video
from deep_emotion.video.clips import (
    DEFAULT_FPS,
    MAX_FPS,
    VIDEO_FRAMING,
    VIDEO_TYPES,
    VideoInfo,
    VideoLoadError,
    check_fps,
    frame_at,
    probe,
    sample_frames,
    write_clip,
)
from deep_emotion.video.live import LiveFace, LiveReader

__all__ = [
    "DEFAULT_FPS",
    "MAX_FPS",
    "VIDEO_FRAMING",
    "VIDEO_TYPES",
    "VideoInfo",
    "VideoLoadError",
    "check_fps",
    "frame_at",
    "probe",
    "sample_frames",
    "write_clip",
    "FaceAtTime",
    "VideoAnalysis",
    "analyze_video",
    "LiveFace",
    "LiveReader",
]

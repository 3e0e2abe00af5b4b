"""The example photo and clip every front end offers (Streamlit, Gradio), made without any UI library.

example_photo_path()          # webapp/examples/astronaut.jpg, or $DEEP_EMOTION_EXAMPLE
data, name = example_clip()   # four seconds made from the example photo, or $DEEP_EMOTION_EXAMPLE_CLIP
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

from deep_emotion.errors import DeepEmotionError
from deep_emotion.video.clips import write_clip

# beside the library in a checkout, a Docker image and a Gradio Space alike
EXAMPLES = Path(__file__).resolve().parents[2] / "webapp" / "examples"


def example_photo_path() -> Path:
    """The example photo: $DEEP_EMOTION_EXAMPLE where a host sets it, else webapp/examples/astronaut.jpg (read
    at each call, so a changed variable takes effect)."""
    return Path(os.environ.get("DEEP_EMOTION_EXAMPLE") or EXAMPLES / "astronaut.jpg")


def example_clip(chosen: str | None = None) -> tuple[bytes, str]:
    """The example clip's bytes and name: the file `chosen` (a host's $DEEP_EMOTION_EXAMPLE_CLIP), else four
    seconds at 10 frames per second made from the example photo (a slow zoom into the face, then a pan right),
    named '<photo>-clip.mp4'. A missing `chosen` file is a `DeepEmotionError`."""
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise DeepEmotionError(f"the example clip {chosen} does not exist (DEEP_EMOTION_EXAMPLE_CLIP)")
        return path.read_bytes(), path.name
    source = example_photo_path()
    photo = Image.open(source).convert("RGB")
    w, h = photo.size
    frames = []
    base = min(w, h / 0.75)  # the widest 4:3 view inside the photo
    for k in range(40):
        z = 1 + 0.8 * min(k, 20) / 20  # zoom in for 2 s, then pan right for 2 s
        cw, ch = base / z, base / z * 0.75
        x0 = min((w - cw) / 2 + (0 if k < 20 else (k - 20) * w * 0.004), w - cw)
        y0 = min(max(0.0, h * 0.32 - ch / 2), h - ch)
        frames.append(photo.resize((480, 360), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)))
    with tempfile.TemporaryDirectory() as folder:
        return write_clip(Path(folder) / "example.mp4", frames, fps=10).read_bytes(), f"{source.stem}-clip.mp4"

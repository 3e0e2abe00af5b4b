"""Reading an uploaded or user-given picture into an upright RGB image, or an `ImageLoadError` that says why."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deep_emotion.errors import ImageLoadError

MAX_PIXELS = 64_000_000  # larger declared sizes are refused before decoding (decompression bombs)
MAX_BYTES = 50 * 1024 * 1024


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite transparent pixels onto white (a transparent face background reads as paper, not black)."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return _flatten_alpha(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float grey: rescale to 8 bits
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")  # L, P, CMYK, YCbCr, 1, ...


def load_image(source: str | Path | bytes | io.IOBase, name: str | None = None) -> Image.Image:
    """Decode a file path, bytes or file object; first frame of animations; EXIF rotation applied; RGB."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "upload")
    try:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise ImageLoadError(f"{label}: no such file")
            if path.stat().st_size > MAX_BYTES:
                raise ImageLoadError(f"{label}: file is larger than {MAX_BYTES // 2**20} MB")
            data = path.read_bytes()
        elif isinstance(source, bytes):
            data = source
        else:
            data = source.read(MAX_BYTES + 1)
        if not data:
            raise ImageLoadError(f"{label}: the file is empty")
        if len(data) > MAX_BYTES:
            raise ImageLoadError(f"{label}: file is larger than {MAX_BYTES // 2**20} MB")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageLoadError(
                    f"{label}: {w}x{h} pixels is more than the {MAX_PIXELS // 10**6} megapixels accepted"
                )
            if w < 1 or h < 1:
                raise ImageLoadError(f"{label}: image has no pixels")
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return _to_rgb(im)
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"{label}: not a readable image ({type(e).__name__})") from e
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise ImageLoadError(f"{label}: the image is truncated or damaged ({e})") from e

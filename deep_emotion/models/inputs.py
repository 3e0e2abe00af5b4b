"""Turning any decoded picture into the network's input: a 48x48 grey face, pixels in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from deep_emotion.models.registry import EmotionModel

INPUT_SIZE = 48


def to_grey_square(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Grey (ITU-R 601 luma, PIL's "L"), resized to size x size with antialiasing; uint8 (size, size)."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    grey = image.convert("L")
    if grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(grey, dtype=np.uint8)


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (H, W) -> float (N, 1, H, W) in [0, 1]."""
    arr = np.asarray(faces, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    return torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(1)


@torch.no_grad()
def predict_proba(
    model: EmotionModel,
    images: np.ndarray,
    batch_size: int = 512,
    tta_flip: bool = False,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Softmax probabilities (N, C) for uint8 faces (N, 48, 48); eval mode, restored afterwards. `device`: where
    the faces go (default: where the model's weights are)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i : i + batch_size]).to(device)
        p = model(x).softmax(1)
        if tta_flip:
            p = (p + model(x.flip(-1)).softmax(1)) / 2
        out.append(p.cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.num_classes), np.float32)

"""Predictions for a photo: find every face, crop it, classify it. No UI code here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .evaluation import predict_proba
from .faces import DEFAULT_MARGIN, Face, detect_faces, whole_image_face
from .model import DeepEmotion


@dataclass
class FacePrediction:
    box: tuple[float, float, float, float]
    face_probability: float
    probabilities: dict[str, float]  # class name -> softmax probability
    top: str
    crop: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box], "face_probability": round(self.face_probability, 4),
                "top": self.top, "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


def find_faces(image: Image.Image, detect: bool = True, margin: float = DEFAULT_MARGIN) -> list[Face]:
    """MTCNN's faces, largest first (maybe none), or the whole image as one face when `detect` is False."""
    return detect_faces(image, margin=margin) if detect else [whole_image_face(image)]


def classify(model: DeepEmotion, classes: list[str], faces: list[Face]) -> list[FacePrediction]:
    """One forward pass over all face crops."""
    if not faces:
        return []
    proba = predict_proba(model, np.stack([f.crop for f in faces]))
    return [
        FacePrediction(f.box, f.probability, {c: float(v) for c, v in zip(classes, p)}, classes[int(p.argmax())], f.crop)
        for f, p in zip(faces, proba)
    ]

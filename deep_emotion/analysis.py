"""The one analysis that the CLI and both web front ends call: faces, predictions, STN views and maps.

Returns plain dataclasses of numbers and arrays; imports no UI library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from . import explain
from .evaluation import predict_proba
from .faces import DEFAULT_MARGIN, Face, detect_faces, or_whole_picture, whole_image_face
from .model import DeepEmotion
from .preprocess import to_tensor

Loaded = tuple[DeepEmotion, dict[str, Any]]  # (model, card), as load_checkpoint returns them


@dataclass
class FacePrediction:
    box: tuple[float, float, float, float]
    face_probability: float
    probabilities: dict[str, float]  # class name -> softmax probability
    top: str
    crop: np.ndarray = field(repr=False)
    detected: bool = True  # False: no face found; the whole picture was read as one

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box], "face_probability": round(self.face_probability, 4),
                "detected": self.detected, "top": self.top, "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


@dataclass
class ModelView:
    """What one model makes of one face."""

    model: str
    probabilities: dict[str, float]
    top: str
    theta: np.ndarray  # (2, 3) the STN's affine parameters
    stn_view: np.ndarray = field(repr=False)  # (48, 48) float in [0, 1]
    paper_map: np.ndarray = field(repr=False)  # (48, 48): flip counts or mean probability drop
    captum_map: np.ndarray | None = field(default=None, repr=False)  # (48, 48) Captum Occlusion, if asked

    def to_dict(self) -> dict[str, Any]:
        d = {"model": self.model, "top": self.top,
             "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
             "theta": np.round(self.theta, 4).tolist(), "paper_map": map_summary(self.paper_map)}
        if self.captum_map is not None:
            d["captum_map"] = map_summary(self.captum_map)
        return d


@dataclass
class FaceAnalysis:
    index: int  # 0 = the largest face
    box: tuple[float, float, float, float]
    face_probability: float
    crop: np.ndarray = field(repr=False)  # (48, 48) uint8
    views: dict[str, ModelView] = field(default_factory=dict)


@dataclass
class Analysis:
    faces: list[FaceAnalysis]
    detected: bool  # False: the whole image was taken as the face
    image_size: tuple[int, int]
    window: int
    stride: int
    mode: str
    forward_passes_per_model: int  # occluded copies per face and model

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "detected": self.detected, "window": self.window,
                "stride": self.stride, "mode": self.mode, "forward_passes_per_model": self.forward_passes_per_model,
                "faces": [{"index": f.index, "box": [round(v, 1) for v in f.box],
                           "face_probability": round(f.face_probability, 4),
                           "models": {n: v.to_dict() for n, v in f.views.items()}} for f in self.faces]}


def map_summary(m: np.ndarray) -> dict[str, Any]:
    """A map's range and where its peak lies (row, column of the 48x48 crop)."""
    peak = np.unravel_index(int(np.argmax(m)), m.shape)
    return {"min": round(float(m.min()), 5), "max": round(float(m.max()), 5), "mean": round(float(m.mean()), 5),
            "peak": [int(peak[0]), int(peak[1])]}


def find_faces(image: Image.Image, detect: bool = True, margin: float = DEFAULT_MARGIN) -> list[Face]:
    """MTCNN's faces, largest first (maybe none; a small, square picture without one is read as one face:
    `faces.or_whole_picture`), or the whole image as one face when `detect` is False."""
    return or_whole_picture(image, detect_faces(image, margin=margin)) if detect else [whole_image_face(image)]


def classify(model: DeepEmotion, classes: list[str], faces: list[Face]) -> list[FacePrediction]:
    """One forward pass over all face crops."""
    if not faces:
        return []
    proba = predict_proba(model, np.stack([f.crop for f in faces]))
    return [
        FacePrediction(f.box, f.probability, {c: float(v) for c, v in zip(classes, p)}, classes[int(p.argmax())], f.crop,
                       f.detected)
        for f, p in zip(faces, proba)
    ]


def view_face(name: str, loaded: Loaded, crop: np.ndarray, window: int, stride: int, mode: str = "flip",
              captum: bool = True, run_captum: bool = False) -> ModelView:
    """Prediction, STN view and maps of one model for one 48x48 face crop.

    The occluded copies go through the network once; both paper maps come from those passes, and so does
    Captum's map: Captum's Occlusion on the softmax output is, by definition, the "drop" map (tests check
    the two against each other). `run_captum=True` calls Captum itself instead (slower, same numbers)."""
    model, card = loaded
    x = to_tensor(crop)  # (1, 1, 48, 48)
    p0, p, masks = explain.occluded_probabilities(model, x, window, stride)
    maps = explain.maps_from_probabilities(p0, p, masks)
    warped, theta = explain.stn_view(model, x)
    classes = card["classes"]
    cap = None
    if captum:
        cap = (explain.captum_occlusion(model, x, window, stride, perturbations_per_eval=128) if run_captum
               else maps["drop"])
    return ModelView(name, {c: float(v) for c, v in zip(classes, p0)}, classes[int(p0.argmax())],
                     theta.numpy(), warped.numpy(), maps[mode].numpy(), None if cap is None else cap.numpy())


def analyze(image: Image.Image, models: Mapping[str, Loaded], window: int = 8, stride: int = 2, mode: str = "flip",
            captum: bool = True, detect: bool = True, faces: list[Face] | None = None,
            face_indices: list[int] | None = None, run_captum: bool = False) -> Analysis:
    """Find the faces (or reuse `faces`), then for each chosen face (default: all) and each model compute the
    prediction, STN view, paper map and (optionally) Captum's map. No face: `faces` is empty."""
    if not models:
        raise ValueError("choose at least one model")
    if mode not in explain.MODES:
        raise ValueError(f"mode must be one of {explain.MODES}, not {mode!r}")
    explain.check_window(48, window, stride)
    found = faces if faces is not None else find_faces(image, detect)
    chosen = range(len(found)) if face_indices is None else face_indices
    results = []
    with torch.inference_mode():
        for i in chosen:
            if not 0 <= i < len(found):
                raise ValueError(f"face {i + 1} does not exist: {len(found)} face(s) found")
            f = found[i]
            views = {name: view_face(name, loaded, f.crop, window, stride, mode, captum, run_captum)
                     for name, loaded in models.items()}
            results.append(FaceAnalysis(i, f.box, f.probability, f.crop, views))
    detected = detect and all(f.detected for f in found)
    return Analysis(results, detected, image.size, window, stride, mode, explain.n_windows(48, window, stride))

"""The one analysis that the CLI and both web front ends call: faces, predictions, STN views and maps.

Returns plain dataclasses of numbers and arrays; imports no UI library.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from deep_emotion import explain
from deep_emotion.models.inputs import predict_proba
from deep_emotion.faces.framing import DEFAULT_MARGIN
from deep_emotion.faces.detect import Face, detect_faces, or_whole_picture, whole_image_face
from deep_emotion.models.paper import DeepEmotion
from deep_emotion.explain.registry import Map
from deep_emotion.models.inputs import INPUT_SIZE, to_tensor

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


DEFAULT_METHODS = ("occlusion-flip", "captum-occlusion", "integrated-gradients", "smoothgrad", "gradcam", "regions",
                   "stn")


@dataclass(frozen=True)
class AnalysisOptions:
    """What to compute for each face and model; `check` says what is wrong in one message."""

    methods: tuple[str, ...] = DEFAULT_METHODS  # explanation methods (explain.py registry), in this order
    window: int = 8  # occlusion: black square, pixels of the model's input
    stride: int = 2
    target: str | None = None  # the class to explain (by name); None: each model's top class
    faithfulness: bool = False  # deletion/insertion AUC of every map, with a random map as baseline
    detect: bool = True  # False: the whole image is the face
    captum_itself: bool = False  # Captum Occlusion run by Captum (slower, the same numbers)

    def __post_init__(self) -> None:
        if not isinstance(self.methods, tuple):
            object.__setattr__(self, "methods", tuple(self.methods))

    def check(self, input_size: int = INPUT_SIZE) -> None:
        """ValueError naming every bad option."""
        problems = []
        try:
            explain.check_window(input_size, self.window, self.stride)
        except ValueError as e:
            problems.append(str(e))
        try:
            explain.check_methods(self.methods)
        except ValueError as e:
            problems.append(str(e))
        if not self.methods:
            problems.append("choose at least one explanation method")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "methods": list(self.methods)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalysisOptions:
        return cls(**{**d, "methods": tuple(d.get("methods", DEFAULT_METHODS))})


@dataclass
class ModelView:
    """What one model makes of one face."""

    model: str
    probabilities: dict[str, float]
    top: str
    target: str  # the class the maps explain
    theta: np.ndarray | None  # (2, 3) the STN's affine parameters; None: the model has no STN
    stn_view: np.ndarray | None = field(repr=False)  # (H, W) float in [0, 1]; None: no STN
    maps: dict[str, Map] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it does not apply to this model
    faithfulness: dict[str, dict[str, float]] | None = None  # map (and "random") -> deletion, insertion, difference

    def to_dict(self) -> dict[str, Any]:
        d = {"model": self.model, "top": self.top, "target": self.target,
             "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
             "theta": None if self.theta is None else np.round(self.theta, 4).tolist(),
             "maps": {n: m.to_dict() for n, m in self.maps.items()}}
        if self.skipped:
            d["skipped"] = dict(self.skipped)
        if self.faithfulness is not None:
            d["faithfulness"] = {n: {k: round(v, 4) for k, v in f.items()} for n, f in self.faithfulness.items()}
        return d

    def most_faithful(self) -> str | None:
        """The map with the largest insertion - deletion AUC difference (not the random one)."""
        if not self.faithfulness:
            return None
        scored = {n: f["difference"] for n, f in self.faithfulness.items() if n != "random"}
        return max(scored, key=scored.get) if scored else None


@dataclass
class FaceAnalysis:
    index: int  # 0 = the largest face
    box: tuple[float, float, float, float]
    face_probability: float
    crop: np.ndarray = field(repr=False)  # (48, 48) uint8
    views: dict[str, ModelView] = field(default_factory=dict)
    detected: bool = True


@dataclass
class Analysis:
    faces: list[FaceAnalysis]
    detected: bool  # False: the whole image was taken as the face
    image_size: tuple[int, int] | None
    options: AnalysisOptions

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": None if self.image_size is None else list(self.image_size), "detected": self.detected,
                "options": self.options.to_dict(),
                "faces": [{"index": f.index, "box": [round(v, 1) for v in f.box],
                           "face_probability": round(f.face_probability, 4), "detected": f.detected,
                           "models": {n: v.to_dict() for n, v in f.views.items()}} for f in self.faces]}


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


_LOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.Lock:
    """One lock per model: Grad-CAM hooks a layer of the (shared) model, so a face explained in another thread
    (another user of the web app) must not run through that model meanwhile."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.Lock())


def input_size(loaded: Loaded) -> int:
    """The side of the model's square input (its card, else its config)."""
    model, card = loaded
    size = card.get("input", {}).get("size")
    return int(size[-1]) if size else int(model.config.input_size)


def _target_index(classes: list[str], target: str | None, top: int) -> int:
    """The index of the class named `target` (the same name, else the same canonical emotion), else `top`."""
    if target is None:
        return top
    if target in classes:
        return classes.index(target)
    from deep_emotion.classes import canonical

    try:
        names = [canonical(c) for c in classes]
        return names.index(canonical(target))
    except ValueError:  # not an emotion name, or not one of this model's classes
        return top


def summarize(faces: list[Face], models: Mapping[str, Loaded]) -> list[dict[str, Any]]:
    """Every face x every model: per face, its number (1 = largest), each model's top class with its probability,
    and the class most models name (`classes.majority`). One batched pass per model."""
    from deep_emotion.classes import majority

    rows: list[dict[str, Any]] = [{"face": i + 1, "models": {}} for i in range(len(faces))]
    for name, (model, card) in models.items():
        with model_lock(model):  # Grad-CAM may hold hooks on this model in another thread
            predictions = classify(model, card["classes"], faces)
        for row, p in zip(rows, predictions):
            row["models"][name] = {"top": p.top, "probability": round(p.probabilities[p.top], 4)}
    for row in rows:
        row["majority"] = majority([m["top"] for m in row["models"].values()])
    return rows


def view_face(name: str, loaded: Loaded, crop: np.ndarray, options: AnalysisOptions = AnalysisOptions(),
              landmarks: np.ndarray | None = None) -> ModelView:
    """Prediction, STN view, the chosen maps and (optionally) their faithfulness for one model and one face crop.
    The occlusion maps share one set of occluded passes; a method that does not apply to the model is listed
    in `skipped` with its reason. A target class the model does not know falls back to its top class."""
    model, card = loaded
    options.check(input_size(loaded))
    device = next(model.parameters()).device  # CPU, or a GPU where a host moved the model (ZeroGPU Spaces)
    x = to_tensor(crop).to(device)  # (1, 1, H, W)
    classes = card["classes"]
    with model_lock(model):
        with torch.no_grad():
            p0 = model(x).softmax(1)[0]
        target = _target_index(classes, options.target, int(p0.argmax()))
        context = explain.Context(options.window, options.stride, landmarks=landmarks,
                                     captum_itself=options.captum_itself)
        maps, skipped = explain.explain_face(model, x, target, options.methods, context)
        stn = model.stn_view(x)
        faith = None
        if options.faithfulness and maps:
            scored = {n: torch.from_numpy(m.values).to(device) for n, m in maps.items()}
            scored["random"] = explain.random_map(x.shape[-1]).to(device)
            faith = explain.faithfulness(model, x, scored, target)
    return ModelView(name, {c: float(v) for c, v in zip(classes, p0)}, classes[int(p0.argmax())], classes[target],
                     None if stn is None else stn[1][0].cpu().numpy(), None if stn is None else stn[0][0, 0].cpu().numpy(),
                     maps, skipped, faith)


def analyze(image: Image.Image | None, models: Mapping[str, Loaded], options: AnalysisOptions = AnalysisOptions(),
            faces: list[Face] | None = None, face_indices: list[int] | None = None) -> Analysis:
    """Find the faces (or reuse `faces`; then `image` may be None), then for each chosen face (default: all) and
    each model compute the prediction, STN view and the maps of `options`. No face: `faces` is empty."""
    if not models:
        raise ValueError("choose at least one model")
    for loaded in models.values():
        options.check(input_size(loaded))
    if faces is None and image is None:
        raise ValueError("give an image or its faces")
    found = faces if faces is not None else find_faces(image, options.detect)
    chosen = range(len(found)) if face_indices is None else face_indices
    results = []
    with torch.inference_mode():
        for i in chosen:
            if not 0 <= i < len(found):
                raise ValueError(f"face {i + 1} does not exist: {len(found)} face(s) found")
            f = found[i]
            views = {name: view_face(name, loaded, f.crop, options, f.crop_landmarks) for name, loaded in models.items()}
            results.append(FaceAnalysis(i, f.box, f.probability, f.crop, views, f.detected))
    detected = options.detect and all(f.detected for f in found)
    return Analysis(results, detected, None if image is None else image.size, options)

"""What the pipeline answers, as plain records of numbers and arrays: the options of an analysis, each face's
predictions by every model, and each model's view of one face (probabilities, STN view, maps, faithfulness).

Class names are canonical (`deep_emotion.classes`) in every record. Imports no UI library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deep_emotion.classes import canonical_or_label, majority

if TYPE_CHECKING:
    from deep_emotion.explain.registry import Map

INPUT_SIZE = 48  # the side of the networks' square input (a model's card may say otherwise)


@dataclass
class FacePrediction:
    """One face and what every model makes of it (one batched pass per model: `Pipeline.predict`)."""

    index: int  # 0 = the largest face
    box: tuple[float, float, float, float]
    face_probability: float
    probabilities: dict[str, dict[str, float]]  # model -> canonical class -> probability
    crop: np.ndarray = field(repr=False)  # (48, 48) uint8
    detected: bool = True  # False: no face found; the whole picture was read as one
    consensus: dict[str, float] | None = None  # the models' probabilities combined (two or more models)

    def top(self, model: str) -> str:
        p = self.probabilities[model]
        return max(p, key=p.get)

    @property
    def tops(self) -> dict[str, str]:
        return {m: self.top(m) for m in self.probabilities}

    @property
    def majority(self) -> str:
        """The class most models name (a tie: the one named first)."""
        return majority(list(self.tops.values()))

    @property
    def consensus_top(self) -> str | None:
        return None if not self.consensus else max(self.consensus, key=self.consensus.get)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "face": self.index + 1,
            "box": [round(v, 1) for v in self.box],
            "face_probability": round(self.face_probability, 4),
            "detected": self.detected,
            "majority": self.majority,
            "models": {
                m: {"top": self.top(m), "probabilities": {c: round(v, 4) for c, v in p.items()}}
                for m, p in self.probabilities.items()
            },
        }
        if self.consensus:
            d["consensus"] = {
                "top": self.consensus_top,
                "probabilities": {c: round(v, 4) for c, v in self.consensus.items()},
            }
        return d


DEFAULT_METHODS = (
    "occlusion-flip",
    "captum-occlusion",
    "integrated-gradients",
    "smoothgrad",
    "gradcam",
    "regions",
    "stn",
)


@dataclass(frozen=True)
class AnalysisOptions:
    """What to compute for each face and model; `check` says what is wrong in one message."""

    methods: tuple[str, ...] = DEFAULT_METHODS  # explanation methods (explain.py registry), in this order
    window: int = 8  # occlusion: black square, pixels of the model's input
    stride: int = 2
    target: str | None = None  # the class to explain (by name, kept canonical); None: each model's top class
    faithfulness: bool = False  # deletion/insertion AUC of every map, with a random map as baseline
    detect: bool = True  # False: the whole image is the face
    captum_itself: bool = False  # Captum Occlusion run by Captum (slower, the same numbers)

    def __post_init__(self) -> None:
        if not isinstance(self.methods, tuple):
            object.__setattr__(self, "methods", tuple(self.methods))
        if self.target is not None:  # a data set's own name ("happiness") is the canonical class the models list
            object.__setattr__(self, "target", canonical_or_label(self.target))

    def check(self, input_size: int = INPUT_SIZE) -> None:
        """ValueError naming every bad option."""
        from deep_emotion import explain  # torch: only when options are checked

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
        d = {
            "model": self.model,
            "top": self.top,
            "target": self.target,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "theta": None if self.theta is None else np.round(self.theta, 4).tolist(),
            "maps": {n: m.to_dict() for n, m in self.maps.items()},
        }
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
        return {
            "image_size": None if self.image_size is None else list(self.image_size),
            "detected": self.detected,
            "options": self.options.to_dict(),
            "faces": [
                {
                    "index": f.index,
                    "box": [round(v, 1) for v in f.box],
                    "face_probability": round(f.face_probability, 4),
                    "detected": f.detected,
                    "models": {n: v.to_dict() for n, v in f.views.items()},
                }
                for f in self.faces
            ],
        }

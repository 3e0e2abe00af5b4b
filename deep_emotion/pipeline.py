"""The one door: a `Pipeline` holds the loaded models, the face detector and the device, and does what every front
end asks for. Streamlit, Gradio, the CLI, live frames, the photo protocol and the benchmarks build one and call it;
none of them re-assembles its steps.

    pipe = Pipeline.from_names("fer2013,ferplus")
    faces = pipe.find_faces(load_image("group.jpg"))        # largest first
    for p in pipe.predict(faces):                             # one batched pass per model
        print(p.index + 1, p.tops, p.majority)
    views = pipe.explain(faces[0], options=AnalysisOptions(methods=("occlusion-flip", "gradcam")))

It owns one lock per model (Grad-CAM hooks a layer of a shared model, so two threads must not run through one
model at once) and an optional limit on analyses at once (`workers`, for servers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from deep_emotion import explain
from deep_emotion.classes import CANONICAL
from deep_emotion.faces.detect import Detector, Face
from deep_emotion.faces.framing import crop_face
from deep_emotion.models.card import ModelCard, checkpoint_dir, default_models, list_checkpoints, model_order
from deep_emotion.models.checkpoints import LoadedModel, load_checkpoint
from deep_emotion.models.consensus import EQUAL, ConsensusWeights, combine
from deep_emotion.models.inputs import predict_proba, to_grey_square, to_tensor
from deep_emotion.results import Analysis, AnalysisOptions, FaceAnalysis, FacePrediction, ModelView
from deep_emotion.video.analysis import VideoAnalysis, analyze_video
from deep_emotion.video.clips import DEFAULT_FPS, DETECT_SIDE, VIDEO_FRAMING, Source, VideoInfo, probe
from deep_emotion.video.live import LiveReader


def parse_names(names: str | Iterable[str] | None) -> list[str] | None:
    """'fer2013,ferplus' or ['fer2013', 'ferplus,jaffe'] -> ['fer2013', 'ferplus', 'jaffe']; None stays None."""
    if names is None:
        return None
    parts = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for part in parts:
        out += [n for n in dict.fromkeys(n.strip() for n in str(part).split(",")) if n and n not in out]
    return out


class Pipeline:
    """Loaded models (with their cards' post-hoc corrections), a face detector and a device, built once."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        detector: Detector | None = None,
        device: str | torch.device = "cpu",
        workers: int = 0,
        consensus: ConsensusWeights | None = None,
    ) -> None:
        if not models:
            raise ValueError("a pipeline needs at least one model")
        self.device = torch.device(device)
        self.models: dict[str, LoadedModel] = {
            name: LoadedModel(loaded.model.to(self.device), loaded.card) for name, loaded in models.items()
        }
        self.detector = detector or Detector(device=str(self.device))
        self._locks = {name: threading.Lock() for name in self.models}
        self._slots = threading.BoundedSemaphore(workers) if workers > 0 else None
        shipped = checkpoint_dir() / "consensus.json"
        self.consensus_weights = consensus or (ConsensusWeights.read(shipped) if shipped.is_file() else EQUAL)

    @classmethod
    def from_names(
        cls,
        names: str | Iterable[str] | None = None,
        *,
        posthoc: bool = True,
        device: str | torch.device = "cpu",
        detector: Detector | None = None,
        workers: int = 0,
    ) -> Pipeline:
        """Bundled models by name ('fer2013,ferplus', a list, or None for every bundled model) or .safetensors
        paths; `posthoc=False`: the networks alone, without their cards' corrections."""
        chosen = parse_names(names)
        chosen = list_checkpoints() if chosen is None else chosen
        if not chosen:
            raise ValueError("choose at least one model")
        loaded = [load_checkpoint(n, device, posthoc=posthoc) for n in chosen]
        return cls({lm.name: lm for lm in loaded}, detector, device, workers)

    # --- what it holds -----------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Model names in picker order: models of photos from the wild first, then posed sets."""
        return model_order(self.cards)

    @property
    def cards(self) -> dict[str, ModelCard]:
        return {name: lm.card for name, lm in self.models.items()}

    @property
    def default_models(self) -> list[str]:
        """What a front end selects at first (the paper's network trained on photos from the wild)."""
        return default_models(self.cards)

    @property
    def classes(self) -> list[str]:
        """Every class some model knows, in canonical order."""
        known = {c for lm in self.models.values() for c in lm.classes}
        return [c for c in CANONICAL if c in known] + sorted(known - set(CANONICAL))

    @property
    def input_size(self) -> int:
        """The smallest input side of the models (an occlusion window must fit every one)."""
        return min(lm.input_size for lm in self.models.values())

    def choose(self, names: str | Iterable[str] | None = None) -> list[str]:
        """Chosen model names, checked ('a,b' or a list; None: every model); ValueError naming unknown ones."""
        chosen = parse_names(names)
        if chosen is None:
            return list(self.models)
        unknown = [n for n in chosen if n not in self.models]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}; available: {', '.join(self.names)}")
        if not chosen:
            raise ValueError("choose at least one model")
        return chosen

    def lock(self, name: str) -> threading.Lock:
        return self._locks[name]

    def slot(self) -> AbstractContextManager[Any]:
        """One of the `workers` analyses allowed at once (waits for a free one); no limit when workers is 0."""
        return self._slots if self._slots is not None else nullcontext()

    def busy(self) -> bool:
        """Whether every slot is taken (the next analysis would wait)."""
        if self._slots is None:
            return False
        if self._slots.acquire(blocking=False):
            self._slots.release()
            return False
        return True

    def to(self, device: str | torch.device) -> Pipeline:
        """Move the models and the face detector to `device` (on a ZeroGPU Space a GPU is attached only inside
        the call that runs the networks, so they move there in that call); returns the pipeline."""
        self.device = torch.device(device)
        for lm in self.models.values():
            lm.model.to(self.device)
        self.detector = replace(self.detector, device=str(self.device))
        return self

    # --- faces ---------------------------------------------------------------------------------------------------

    def find_faces(self, image: Image.Image, detect: bool = True) -> list[Face]:
        """Faces, largest first (maybe none). A small square picture without a face is read as one face
        (`Face.detected` False); `detect=False` reads the whole picture as the face."""
        return self.detector(image, detect)

    def find_faces_batch(self, images: list[Image.Image], detect: bool = True) -> list[list[Face]]:
        """`find_faces` for many pictures; those of one size go through the detector together."""
        return self.detector.batch(images, detect)

    def face_picture(self, image: Image.Image, face: Face, side: int = 288) -> np.ndarray:
        """The face's square of the photo in grey at `side` pixels (the square of its 48x48 crop): maps are drawn
        over it at the photo's resolution."""
        if not face.detected:
            return to_grey_square(image, side)
        return crop_face(image, face.box, size=side, landmarks=face.landmarks, framing=self.detector.framing)

    # --- predictions ---------------------------------------------------------------------------------------------

    def read_crops(
        self, crops: list[np.ndarray] | np.ndarray, models: str | Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Probabilities (N, classes) of 48x48 grey crops by each chosen model, one batched pass per model."""
        out = {}
        for name in self.choose(models):
            lm = self.models[name]
            if len(crops) == 0:
                out[name] = np.zeros((0, len(lm.classes)), np.float32)
                continue
            with self.lock(name):
                out[name] = predict_proba(lm.model, np.stack(list(crops)))
        return out

    def consensus(self, probabilities: Mapping[str, Mapping[str, float]]) -> dict[str, float] | None:
        """model -> (class -> probability) combined over the canonical classes with the shipped weights
        (models/consensus.py); None for fewer than two models."""
        return combine(probabilities, self.consensus_weights) if len(probabilities) >= 2 else None

    def predict(self, faces: list[Face], models: str | Iterable[str] | None = None) -> list[FacePrediction]:
        """Every face by every chosen model, in one batched pass per model, and their consensus."""
        probs = self.read_crops([f.crop for f in faces], models)
        out = []
        for i, f in enumerate(faces):
            per_model = {m: {c: float(v) for c, v in zip(self.models[m].classes, p[i])} for m, p in probs.items()}
            out.append(
                FacePrediction(i, f.box, f.probability, per_model, f.crop, f.detected, self.consensus(per_model))
            )
        return out

    def predict_many(
        self, faces_per_picture: list[list[Face]], models: str | Iterable[str] | None = None
    ) -> list[list[FacePrediction]]:
        """`predict` for the faces of many pictures at once (one batched pass per model over all of them)."""
        flat = self.predict([f for faces in faces_per_picture for f in faces], models)
        out, start = [], 0
        for faces in faces_per_picture:
            out.append([replace(p, index=i) for i, p in enumerate(flat[start : start + len(faces)])])
            start += len(faces)
        return out

    # --- explanations --------------------------------------------------------------------------------------------

    def explain(
        self, face: Face, models: str | Iterable[str] | None = None, options: AnalysisOptions = AnalysisOptions()
    ) -> dict[str, ModelView]:
        """Each chosen model's view of one face: prediction, STN view, the maps of `options` (the occlusion maps
        share one set of occluded passes) and optionally their faithfulness. A method that does not apply to a
        model is listed in `ModelView.skipped` with its reason; a target class a model does not know falls back to
        its top class."""
        chosen = self.choose(models)
        for name in chosen:
            options.check(self.models[name].input_size)
        with torch.inference_mode():
            return {name: self._view(name, face.crop, options, face.crop_landmarks) for name in chosen}

    def _view(self, name: str, crop: np.ndarray, options: AnalysisOptions, landmarks: np.ndarray | None) -> ModelView:
        lm = self.models[name]
        model, classes = lm.model, list(lm.classes)
        x = to_tensor(crop).to(self.device)  # (1, 1, H, W)
        with self.lock(name):
            with torch.no_grad():
                p0 = model(x).softmax(1)[0]
            top = int(p0.argmax())
            target = classes.index(options.target) if options.target in classes else top
            context = explain.Context(
                options.window, options.stride, landmarks=landmarks, captum_itself=options.captum_itself
            )
            maps, skipped = explain.explain_face(model, x, target, options.methods, context)
            stn = model.stn_view(x)
            faith = None
            if options.faithfulness and maps:
                scored = {n: torch.from_numpy(m.values).to(self.device) for n, m in maps.items()}
                scored["random"] = explain.random_map(x.shape[-1]).to(self.device)
                faith = explain.faithfulness(model, x, scored, target)
        return ModelView(
            name,
            {c: float(v) for c, v in zip(classes, p0)},
            classes[top],
            classes[target],
            None if stn is None else stn[1][0].cpu().numpy(),
            None if stn is None else stn[0][0, 0].cpu().numpy(),
            maps,
            skipped,
            faith,
        )

    def analyze(
        self,
        image: Image.Image | None,
        models: str | Iterable[str] | None = None,
        options: AnalysisOptions = AnalysisOptions(),
        faces: list[Face] | None = None,
        face_indices: list[int] | None = None,
    ) -> Analysis:
        """Find the faces (or reuse `faces`; then `image` may be None), then explain each chosen face (default:
        all) with each chosen model. No face: `Analysis.faces` is empty."""
        chosen = self.choose(models)
        for name in chosen:
            options.check(self.models[name].input_size)
        if faces is None and image is None:
            raise ValueError("give an image or its faces")
        found = faces if faces is not None else self.find_faces(image, options.detect)
        picked = range(len(found)) if face_indices is None else face_indices
        results = []
        for i in picked:
            if not 0 <= i < len(found):
                raise ValueError(f"face {i + 1} does not exist: {len(found)} face(s) found")
            f = found[i]
            results.append(FaceAnalysis(i, f.box, f.probability, f.crop, self.explain(f, chosen, options), f.detected))
        detected = options.detect and all(f.detected for f in found)
        return Analysis(results, detected, None if image is None else image.size, options)

    # --- clips and streams ---------------------------------------------------------------------------------------

    def probe_clip(self, source: Source, name: str | None = None) -> VideoInfo:
        """The clip's size, length and frame rate; refused (`VideoLoadError`) when over the caps, before decoding."""
        return probe(source, name)

    def analyze_clip(
        self,
        source: Source,
        models: str | Iterable[str] | None = None,
        fps: float = DEFAULT_FPS,
        name: str | None = None,
        detect_every: int = 1,
        smooth: float = 0.0,
        detect_side: int = DETECT_SIDE,
        progress: Callable[[float, int], None] | None = None,
    ) -> VideoAnalysis:
        """Every face of a clip's frames sampled at `fps`, followed across frames and read by every chosen model;
        `smooth`: half-life (s) of each face's moving average; faces are searched on a copy of each frame whose
        longer side is `detect_side`. `progress(time, frames)` after each batch."""
        chosen = self.choose(models)
        finder = replace(self.detector, framing=VIDEO_FRAMING, detect_side=detect_side, whole_picture=False)
        return analyze_video(
            source,
            finder.batch,
            lambda crops: self.read_crops(crops, chosen),
            {m: list(self.models[m].classes) for m in chosen},
            fps=fps,
            name=name,
            detect_every=detect_every,
            smooth=smooth,
            framing=VIDEO_FRAMING,
            progress=progress,
        )

    def live(self, model: str | None = None, **settings: Any) -> LiveReader:
        """A reader of one stream's frames with one model (default: the first default model): faces followed,
        smoothed top classes, the largest face's map (`LiveReader.process`)."""
        name = self.choose(model)[0] if model else self.default_models[0]
        return LiveReader(self, name, **settings)

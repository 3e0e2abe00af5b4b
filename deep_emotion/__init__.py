"""Deep-Emotion: the attentional convolutional network of Minaee & Abdolrashidi, with face finding and explanations.

What a notebook needs::

    from deep_emotion import Pipeline, load_image
    pipe = Pipeline.from_names(["fer2013", "ferplus"])
    print(pipe.predict(pipe.find_faces(load_image("photo.jpg"))))

Names are imported on first use (PEP 562), so that `deep-emotion --help` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # the door
    "Pipeline": "pipeline",
    "AnalysisOptions": "results",
    "Analysis": "results",
    "FaceAnalysis": "results",
    "FacePrediction": "results",
    "ModelView": "results",
    "DEFAULT_METHODS": "results",
    # models and cards
    "load_model": "models.checkpoints",
    "LoadedModel": "models.checkpoints",
    "load_checkpoint": "models.checkpoints",
    "save_checkpoint": "models.checkpoints",
    "ModelCard": "models.card",
    "list_checkpoints": "models.card",
    "create_model": "models.registry",
    "list_models": "models.registry",
    "register_model": "models.registry",
    "EmotionModel": "models.registry",
    "DeepEmotion": "models.paper",
    "ModelConfig": "models.paper",
    "PostHoc": "models.posthoc",
    # faces
    "load_image": "faces.images",
    "Face": "faces.detect",
    "Detector": "faces.detect",
    "detect_faces": "faces.detect",
    "Framing": "faces.framing",
    "crop_face": "faces.framing",
    # explanations
    "register_explainer": "explain.registry",
    "list_explainers": "explain.registry",
    "Map": "explain.registry",
    # training
    "Recipe": "training.recipe",
    "load_recipe": "training.recipe",
    "FaceDataset": "training.data",
    "load_dataset": "training.data",
    # vocabulary and errors
    "CANONICAL": "classes",
    "canonical": "classes",
    "DeepEmotionError": "errors",
    "DataLayoutError": "errors",
    "ImageLoadError": "errors",
    "CheckpointError": "errors",
    "RecipeError": "errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deep_emotion' has no attribute {name!r}")
    return getattr(importlib.import_module(f"deep_emotion.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])

"""The networks and their cards: a registry of model families (timm-style `register_model` / `create_model`), the
paper's network and its wide variant, a small ResNet, exact layer folds, model cards, checkpoints (safetensors),
post-hoc corrections and the network's input.

Names are imported on first use, so that reading cards (`deep_emotion.models.card`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "register_model": "registry",
    "create_model": "registry",
    "list_models": "registry",
    "EmotionModel": "registry",
    "DeepEmotion": "paper",
    "ModelConfig": "paper",
    "ResNetSmall": "resnet",
    "ResNetConfig": "resnet",
    "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "load_model": "checkpoints",
    "LoadedModel": "checkpoints",
    "ModelCard": "card",
    "list_checkpoints": "card",
    "read_card": "card",
    "checkpoint_dir": "card",
    "default_models": "card",
    "model_order": "card",
    "PostHoc": "posthoc",
    "predict_proba": "inputs",
    "to_tensor": "inputs",
    "to_grey_square": "inputs",
    "INPUT_SIZE": "inputs",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deep_emotion.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"deep_emotion.models.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)

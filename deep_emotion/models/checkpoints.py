"""Weights (safetensors, never pickle) and their model card (JSON), saved and loaded together.

`load_checkpoint(name_or_path)` is the one place that loads a model: it builds the card's `architecture`
(architectures.create_model; a card without one is a DeepEmotion), checks the card against the weights
(sha256, tensor names and shapes, class count) and raises `CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deep_emotion.errors import CheckpointError
from deep_emotion.models.card import ModelCard, read_card, resolve, sha256
from deep_emotion.models.posthoc import PostHoc
from deep_emotion.models.registry import EmotionModel, architecture_name, create_model, list_models


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop wrappers' prefixes (torch.compile's `_orig_mod.`, DataParallel's `module.`)."""
    out = {}
    for k, v in state.items():
        for p in ("_orig_mod.", "module."):
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def save_checkpoint(model: EmotionModel, card: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    """Write <stem>.safetensors and <stem>.json (the card, with the weights' sha256, the model's registered
    architecture and its config)."""
    arch = architecture_name(model)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights, card_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    state = {k: v.detach().cpu().contiguous() for k, v in _strip_prefixes(model.state_dict()).items()}
    save_file(state, str(weights), metadata={"format": "pt", "name": stem.name})
    card = {**card, "architecture": arch, "model_config": model.config.to_dict(), "sha256": sha256(weights)}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights, card_path


class LoadedModel(NamedTuple):
    """A network ready for inference and its card; unpacks as `model, card = loaded`."""

    model: EmotionModel
    card: ModelCard

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def classes(self) -> tuple[str, ...]:
        """Canonical class names in the network's output order."""
        return self.card.classes

    @property
    def input_size(self) -> int:
        return self.card.input.side


def load_checkpoint(name_or_path: str | Path, device: str | torch.device = "cpu", posthoc: bool = False) -> LoadedModel:
    """The model in eval mode and its card. `posthoc=True`: the model's outputs carry the card's post-hoc
    corrections (flip averaging, logit adjustment, temperature; models/posthoc.py), as the front ends show them."""
    weights = resolve(name_or_path)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file does not exist")
    card = read_card(weights)
    if card.sha256 and card.sha256 != sha256(weights):
        raise CheckpointError(f"{weights}: sha256 differs from its model card (file changed or corrupted)")
    if card.architecture not in list_models():
        raise CheckpointError(
            f"{weights.with_suffix('.json')}: unknown architecture {card.architecture!r}; "
            f"known: {', '.join(list_models())}"
        )
    try:
        model = create_model(card.architecture, card.model_config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{weights.with_suffix('.json')}: bad model_config ({e})") from e
    num_classes = model.config.num_classes
    if num_classes != len(card.labels):
        raise CheckpointError(f"{weights}: card lists {len(card.labels)} classes, model has {num_classes}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from e
    try:
        model.load_state_dict(_strip_prefixes(state), strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{weights}: weights do not match the card's architecture ({first})") from e
    if posthoc:
        try:
            correction = PostHoc.from_card(card)
        except (TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{weights.with_suffix('.json')}: bad posthoc block ({e})") from e
        if correction.log_prior and len(correction.log_prior) != num_classes:
            raise CheckpointError(f"{weights.with_suffix('.json')}: posthoc log_prior does not match the classes")
        model.posthoc = None if correction.identity else correction
    # loaded for inference: no gradients for the weights (attribution methods still take them for the input; the
    # folded layers then stay cached). Fine-tuning starts from a fresh model (`init_from`), or call
    # `model.requires_grad_(True)`.
    model.requires_grad_(False)
    return LoadedModel(model.to(device).to(memory_format=torch.channels_last).eval(), card)


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu", posthoc: bool = True) -> LoadedModel:
    """A bundled model (or a .safetensors path) as the front ends use it: with its card's post-hoc corrections."""
    return load_checkpoint(name_or_path, device, posthoc)

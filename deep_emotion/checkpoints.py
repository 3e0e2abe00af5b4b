"""Weights (safetensors, never pickle) and their model card (JSON), saved and loaded together.

`load_checkpoint(name_or_path)` is the one place that loads a model: it builds the card's `architecture`
(architectures.create_model; a card without one is a DeepEmotion), checks the card against the weights
(sha256, tensor names and shapes, class count) and raises `CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .calibration import PostHoc
from .errors import CheckpointError
from .architectures import DEFAULT_ARCHITECTURE, EmotionModel, architecture_name, create_model, list_models

PAPER = "Minaee & Abdolrashidi, Deep-Emotion: Facial Expression Recognition Using Attentional Convolutional Network, Sensors 2021 (arXiv:1902.01019)"


def checkpoint_dir() -> Path:
    """$DEEP_EMOTION_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("DEEP_EMOTION_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop wrappers' prefixes (torch.compile's `_orig_mod.`, DataParallel's `module.`)."""
    out = {}
    for k, v in state.items():
        for p in ("_orig_mod.", "module."):
            if k.startswith(p):
                k = k[len(p):]
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


def resolve(name_or_path: str | Path) -> Path:
    """A bundled name ("fer2013") or a path to .safetensors / .json -> the .safetensors path."""
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json") or p.exists():
        if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".pkl"):
            raise CheckpointError(f"{p}: pickle-based weight files are not loaded; convert them to .safetensors")
        return p.with_suffix(".safetensors")
    p = checkpoint_dir() / f"{name_or_path}.safetensors"
    if not p.is_file():
        known = ", ".join(list_checkpoints()) or "none"
        raise CheckpointError(f"unknown model {name_or_path!r}; bundled models: {known}")
    return p


def read_card(weights: Path) -> dict[str, Any]:
    card_path = weights.with_suffix(".json")
    if not card_path.is_file():
        raise CheckpointError(f"{weights}: its model card {card_path.name} is missing")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{card_path}: not a readable JSON model card ({e})") from e
    if not isinstance(card, dict) or "model_config" not in card or "classes" not in card:
        raise CheckpointError(f"{card_path}: model card lacks 'model_config' or 'classes'")
    return card


def load_checkpoint(name_or_path: str | Path, device: str | torch.device = "cpu",
                    posthoc: bool = False) -> tuple[EmotionModel, dict[str, Any]]:
    """The model in eval mode and its card. `posthoc=True`: the model's outputs carry the card's post-hoc
    corrections (flip averaging, logit adjustment, temperature; calibration.py), as the front ends show them."""
    weights = resolve(name_or_path)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file does not exist")
    card = read_card(weights)
    if card.get("sha256") and card["sha256"] != sha256(weights):
        raise CheckpointError(f"{weights}: sha256 differs from its model card (file changed or corrupted)")
    arch = card.get("architecture", DEFAULT_ARCHITECTURE)
    if arch not in list_models():
        raise CheckpointError(f"{weights.with_suffix('.json')}: unknown architecture {arch!r}; "
                              f"known: {', '.join(list_models())}")
    try:
        model = create_model(arch, card["model_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{weights.with_suffix('.json')}: bad model_config ({e})") from e
    num_classes = model.config.num_classes
    if num_classes != len(card["classes"]):
        raise CheckpointError(f"{weights}: card lists {len(card['classes'])} classes, model has {num_classes}")
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
    return model.to(device).to(memory_format=torch.channels_last).eval(), card


def architecture(card: dict[str, Any]) -> str:
    """'paper' for the paper's network, else what differs, e.g. 'wide 32-64-128' (from the card's model config);
    another family's registered name, e.g. 'ResNetSmall'."""
    if card.get("architecture", DEFAULT_ARCHITECTURE) != DEFAULT_ARCHITECTURE:
        return str(card["architecture"])
    cfg = card.get("model_config", {})
    if cfg.get("stages"):
        return "wide " + "-".join(str(w) for w in cfg["stages"])
    deviations = [k for k, v in (("batch_norm", cfg.get("batch_norm")), ("no STN", cfg.get("stn") is False)) if v]
    if cfg.get("channels", 10) != 10:
        deviations.append(f"{cfg['channels']} filters")
    return "paper" + (f" + {', '.join(deviations)}" if deviations else "")


IN_THE_WILD = ("fer2013", "ferplus")  # web photos of every kind; CK+, JAFFE and FERG are posed lab or drawn faces


def default_models(cards: dict[str, dict[str, Any]]) -> list[str]:
    """What a front end selects at first: the paper-architecture models trained on photos from the wild (FER2013,
    FERPlus), which suit uploaded photos; the posed-set models (CK+, JAFFE) and the `-wide` ones (about 12x the
    occlusion cost) are one click away. Falls back to every paper-architecture model, then to all."""
    paper = [name for name, card in cards.items() if architecture(card) == "paper"]
    wild = [name for name in paper if cards[name].get("dataset") in IN_THE_WILD]
    return wild or paper or list(cards)


def model_order(cards: dict[str, dict[str, Any]]) -> list[str]:
    """Names for a model picker: models of photos from the wild first, then the posed sets; by name within."""
    return sorted(cards, key=lambda n: (cards[n].get("dataset") not in IN_THE_WILD, n))


def list_checkpoints() -> list[str]:
    d = checkpoint_dir()
    return sorted(p.stem for p in d.glob("*.safetensors") if p.with_suffix(".json").is_file()) if d.is_dir() else []

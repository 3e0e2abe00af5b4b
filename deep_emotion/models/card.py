"""Model cards: the JSON record beside every weight file (classes, input, framing, metrics, post-hoc corrections),
found and read without loading any weights (and without importing torch)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deep_emotion.errors import CheckpointError

DEFAULT_ARCHITECTURE = "DeepEmotion"  # what a card or recipe without an `architecture` field means
PAPER = "Minaee & Abdolrashidi, Deep-Emotion: Facial Expression Recognition Using Attentional Convolutional Network, Sensors 2021 (arXiv:1902.01019)"


def checkpoint_dir() -> Path:
    """$DEEP_EMOTION_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("DEEP_EMOTION_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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

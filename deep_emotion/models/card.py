"""Model cards: the JSON record beside every weight file (classes, input, framing, metrics, post-hoc corrections),
found and read without loading any weights (and without importing torch)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deep_emotion.classes import canonical_or_label
from deep_emotion.errors import CheckpointError

DEFAULT_ARCHITECTURE = "DeepEmotion"  # what a card or recipe without an `architecture` field means
PAPER = (
    "Minaee & Abdolrashidi, Deep-Emotion: Facial Expression Recognition Using Attentional Convolutional Network, "
    "Sensors 2021 (arXiv:1902.01019)"
)


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


def read_card(weights: Path) -> ModelCard:
    """The card beside a weight file (<stem>.json), read and checked: `CheckpointError` naming the file."""
    card_path = weights.with_suffix(".json")
    if not card_path.is_file():
        raise CheckpointError(f"{weights}: its model card {card_path.name} is missing")
    try:
        data = json.loads(card_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{card_path}: not a readable JSON model card ({e})") from e
    return ModelCard.from_dict(data, source=str(card_path))


@dataclass(frozen=True)
class SplitMetrics:
    """A model's scores on one split of its data set, under its card's protocol."""

    accuracy: float
    n: int
    split: str = ""
    protocol: str = ""
    balanced_accuracy: float | None = None  # mean per-class recall
    macro_f1: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """What the network reads: (channels, height, width), the pixels' meaning and the normalisation it applies."""

    size: tuple[int, int, int] = (1, 48, 48)
    pixels: str = "grey (PIL 'L'), value/255 in [0, 1]"
    mean: float = 0.5
    std: float = 0.5

    @property
    def side(self) -> int:
        return int(self.size[-1])


@dataclass(frozen=True)
class ModelCard:
    """The record beside every weight file, validated once when read (`from_dict`).

    `labels` are the data set's own class names, in the network's output order (FERPlus says "happiness");
    `classes` are the same classes by their canonical names (`deep_emotion.classes`), which every output uses.
    """

    name: str
    dataset: str
    labels: tuple[str, ...]
    model_config: dict[str, Any] = field(repr=False)
    architecture: str = DEFAULT_ARCHITECTURE
    protocol: str = ""
    protocol_note: str = ""
    input: InputSpec = InputSpec()
    face_crop: dict[str, Any] | None = field(default=None, repr=False)  # `faces.Framing.card()`
    metrics: dict[str, SplitMetrics] = field(default_factory=dict, repr=False)  # "val", "test"
    confusion: tuple[tuple[int, ...], ...] = field(default=(), repr=False)  # rows: true class, on test
    posthoc: dict[str, Any] | None = field(default=None, repr=False)  # `models.posthoc.PostHoc` and its provenance
    sha256: str | None = field(default=None, repr=False)
    fold: int | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # recipe, licence, paper, dates, ...
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the JSON as read

    @property
    def classes(self) -> tuple[str, ...]:
        """The canonical class names in output order (angry, disgust, fear, happy, sad, surprise, neutral, contempt);
        a class that is no emotion of that set (a folder data set's own) keeps its label."""
        return tuple(canonical_or_label(c) for c in self.labels)

    @property
    def test(self) -> SplitMetrics | None:
        return self.metrics.get("test")

    @property
    def description(self) -> str:
        """'paper' for the paper's network, else what differs, e.g. 'wide 32-64-128'; another family's name."""
        return architecture(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> ModelCard:
        """A card from its JSON object; `CheckpointError` naming `source` and the field when it is malformed."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: a model card is a JSON object")
        missing = [k for k in ("name", "dataset", "classes", "model_config") if k not in data]
        if missing:
            raise CheckpointError(f"{source}: model card lacks {', '.join(map(repr, missing))}")
        try:
            labels = tuple(str(c) for c in data["classes"])
            if not labels or len(set(labels)) != len(labels):
                raise ValueError("'classes' must be distinct names")
            if not isinstance(data["model_config"], dict):
                raise ValueError("'model_config' must be an object")
            spec = data.get("input") or {}
            norm = spec.get("normalization") or {}
            size = tuple(int(v) for v in spec.get("size", (1, 48, 48)))
            if len(size) != 3:
                raise ValueError(f"input size {list(size)} is not [channels, height, width]")
            metrics = {}
            for split, m in (data.get("metrics") or {}).items():
                known = {
                    k: m[k] for k in ("accuracy", "n", "split", "protocol", "balanced_accuracy", "macro_f1") if k in m
                }
                metrics[split] = SplitMetrics(**known)
            confusion = tuple(tuple(int(v) for v in row) for row in data.get("confusion") or ())
            if confusion and (len(confusion) != len(labels) or any(len(r) != len(labels) for r in confusion)):
                raise ValueError(f"'confusion' is not {len(labels)}x{len(labels)}")
            posthoc = data.get("posthoc")
            if posthoc is not None and not isinstance(posthoc, dict):
                raise ValueError("'posthoc' must be an object")
            fields = {
                "name",
                "dataset",
                "classes",
                "model_config",
                "architecture",
                "protocol",
                "protocol_note",
                "input",
                "face_crop",
                "metrics",
                "confusion",
                "posthoc",
                "sha256",
                "fold",
                "seed",
            }
            return cls(
                name=str(data["name"]),
                dataset=str(data["dataset"]),
                labels=labels,
                model_config=dict(data["model_config"]),
                architecture=str(data.get("architecture") or DEFAULT_ARCHITECTURE),
                protocol=str(data.get("protocol", "")),
                protocol_note=str(data.get("protocol_note", "")),
                input=InputSpec(
                    size,
                    str(spec.get("pixels", InputSpec.pixels)),
                    float(norm.get("mean", 0.5)),
                    float(norm.get("std", 0.5)),
                ),
                face_crop=data.get("face_crop"),
                metrics=metrics,
                confusion=confusion,
                posthoc=posthoc,
                sha256=data.get("sha256"),
                fold=data.get("fold"),
                seed=data.get("seed"),
                extra={k: v for k, v in data.items() if k not in fields},
                raw=dict(data),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise CheckpointError(f"{source}: bad model card ({e})") from e

    def to_dict(self) -> dict[str, Any]:
        """The JSON object it was read from."""
        return dict(self.raw)


def architecture(card: ModelCard) -> str:
    """'paper' for the paper's network, else what differs, e.g. 'wide 32-64-128' (from the card's model config);
    another family's registered name, e.g. 'ResNetSmall'."""
    if card.architecture != DEFAULT_ARCHITECTURE:
        return card.architecture
    cfg = card.model_config
    if cfg.get("stages"):
        return "wide " + "-".join(str(w) for w in cfg["stages"])
    deviations = [k for k, v in (("batch_norm", cfg.get("batch_norm")), ("no STN", cfg.get("stn") is False)) if v]
    if cfg.get("channels", 10) != 10:
        deviations.append(f"{cfg['channels']} filters")
    return "paper" + (f" + {', '.join(deviations)}" if deviations else "")


IN_THE_WILD = ("fer2013", "ferplus")  # web photos of every kind; CK+, JAFFE and FERG are posed lab or drawn faces


def default_models(cards: dict[str, ModelCard]) -> list[str]:
    """What a front end selects at first: the paper-architecture models trained on photos from the wild (FER2013,
    FERPlus), which suit uploaded photos; the posed-set models (CK+, JAFFE) and the `-wide` ones (about 12x the
    occlusion cost) are one click away. Falls back to every paper-architecture model, then to all."""
    paper = [name for name, card in cards.items() if architecture(card) == "paper"]
    wild = [name for name in paper if cards[name].dataset in IN_THE_WILD]
    return wild or paper or list(cards)


def model_order(cards: dict[str, ModelCard]) -> list[str]:
    """Names for a model picker: models of photos from the wild first, then the posed sets; by name within."""
    return sorted(cards, key=lambda n: (cards[n].dataset not in IN_THE_WILD, n))


def list_checkpoints() -> list[str]:
    d = checkpoint_dir()
    return sorted(p.stem for p in d.glob("*.safetensors") if p.with_suffix(".json").is_file()) if d.is_dir() else []


def read_cards(names: list[str] | None = None) -> dict[str, ModelCard]:
    """The bundled models' cards by name (default: every bundled model), without loading any weights."""
    return {n: read_card(resolve(n)) for n in (list_checkpoints() if names is None else names)}

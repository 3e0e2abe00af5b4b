"""The consensus: the chosen models' calibrated probabilities combined over the canonical classes.

Each class's probability is the weighted mean over the models that know that class (a FER2013 model has no
"contempt": it neither votes for nor against it), then the result is normalised. The weights are equal, one per
model, or one per model and class; which of the three, and their values, were chosen on validation faces only
(`train/fit_consensus.py`, written to `checkpoints/consensus.json`). A model the weights do not name counts with
the mean weight of those they do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deep_emotion.classes import CANONICAL
from deep_emotion.errors import CheckpointError

KINDS = ("equal", "model", "class")


@dataclass(frozen=True)
class ConsensusWeights:
    """How much each model counts, per class where `kind` is "class"."""

    kind: str = "equal"
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> class ("*": every class) -> w
    notes: dict[str, Any] = field(default_factory=dict, repr=False)  # what they were chosen on, and the scores

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"consensus kind {self.kind!r}; known: {', '.join(KINDS)}")
        bad = [w for per in self.weights.values() for w in per.values() if not (w >= 0)]
        if bad:
            raise ValueError("consensus weights must be >= 0")

    def weight(self, model: str, cls: str) -> float:
        if self.kind == "equal":
            return 1.0
        per = self.weights.get(model)
        if per is None:  # a model the weights do not name: the mean weight of the others for this class
            known = [p.get(cls, p.get("*", 1.0)) for p in self.weights.values()]
            return sum(known) / len(known) if known else 1.0
        return float(per.get(cls, per.get("*", 1.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.weights, **self.notes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsensusWeights:
        notes = {k: v for k, v in data.items() if k not in ("kind", "weights")}
        weights = {m: {c: float(w) for c, w in per.items()} for m, per in (data.get("weights") or {}).items()}
        return cls(str(data.get("kind", "equal")), weights, notes)

    @classmethod
    def read(cls, path: str | Path) -> ConsensusWeights:
        """The shipped weights; `CheckpointError` naming the file when it is unreadable."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: not readable consensus weights ({e})") from e


EQUAL = ConsensusWeights()


def combine(probabilities: Mapping[str, Mapping[str, float]], weights: ConsensusWeights = EQUAL) -> dict[str, float]:
    """model -> (canonical class -> probability) into one distribution over every class some model knows, in
    canonical order: per class the weighted mean over the models that know it, then normalised."""
    classes = {c for p in probabilities.values() for c in p}
    order = [c for c in CANONICAL if c in classes] + sorted(classes - set(CANONICAL))
    mixed = {}
    for c in order:
        num = den = 0.0
        for model, p in probabilities.items():
            if c in p:
                w = weights.weight(model, c)
                num += w * float(p[c])
                den += w
        mixed[c] = num / den if den > 0 else 0.0
    total = sum(mixed.values())
    return {c: v / total for c, v in mixed.items()} if total > 0 else {c: 1.0 / len(order) for c in order}

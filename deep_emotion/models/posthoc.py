"""Post-hoc corrections of a model's probabilities, as its card records them: averaging with the mirrored face,
logit adjustment against the training set's class prior (tau), and temperature. Fitted in training/calibrate.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from deep_emotion.models.card import ModelCard


T_RANGE = (0.05, 20.0)
TAU_GRID = tuple(round(0.05 * i, 2) for i in range(41))  # 0, 0.05, ..., 2
CARD_NOTES = ("chosen_on", "rule", "prior_from", "metrics")  # provenance kept beside the fields in a card


@dataclass(frozen=True)
class PostHoc:
    """What to do to a model's logits after training; the default changes nothing."""

    tta_flip: bool = False  # average the softmax with that of the mirrored face (see flip_average)
    tau: float = 0.0  # strength of the logit adjustment: logits - tau * log_prior
    log_prior: tuple[float, ...] = ()  # log training class frequencies, in the model's class order
    temperature: float = 1.0  # divides the adjusted logits; > 1 softens over-confident probabilities

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_prior", tuple(float(v) for v in self.log_prior))
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not (math.isfinite(self.tau) and math.isfinite(self.temperature)):
            raise ValueError(f"tau and temperature must be finite, not {self.tau}, {self.temperature}")
        if not all(math.isfinite(v) for v in self.log_prior):
            raise ValueError("log_prior must be finite")
        if self.tau != 0 and not self.log_prior:
            raise ValueError("tau != 0 needs a log_prior")

    @property
    def identity(self) -> bool:
        return not self.tta_flip and self.tau == 0 and self.temperature == 1

    def adjust(self, logits: torch.Tensor) -> torch.Tensor:
        """(logits - tau * log_prior) / temperature for logits (N, C), on their device and dtype."""
        if self.tau != 0:
            if logits.shape[-1] != len(self.log_prior):
                raise ValueError(f"logits have {logits.shape[-1]} classes, log_prior {len(self.log_prior)}")
            logits = logits - self.tau * torch.tensor(self.log_prior, dtype=logits.dtype, device=logits.device)
        return logits / self.temperature if self.temperature != 1 else logits

    def logits(self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The corrected logits of `forward` (a model) on faces x (N, 1, H, W)."""
        out = forward(x)
        if self.tta_flip:
            out = flip_average(out, forward(x.flip(-1)))
        return self.adjust(out)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "log_prior": list(self.log_prior)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PostHoc:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown PostHoc keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_card(cls, card: ModelCard | dict[str, Any]) -> PostHoc:
        """The card's `posthoc` block without its provenance notes; the identity when the card has none."""
        block = (card.get("posthoc") if isinstance(card, dict) else card.posthoc) or {}
        return cls.from_dict({k: v for k, v in block.items() if k not in CARD_NOTES})


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return (
        x.detach().to("cpu", torch.float64)
        if isinstance(x, torch.Tensor)
        else torch.as_tensor(np.asarray(x), dtype=torch.float64)
    )


def _as_labels(y: torch.Tensor | np.ndarray) -> np.ndarray:
    return y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def flip_average(logits: torch.Tensor, logits_flipped: torch.Tensor) -> torch.Tensor:
    """Log of the mean of the two softmaxes: its softmax is the averaged probabilities."""
    both = torch.stack([logits.log_softmax(-1), logits_flipped.log_softmax(-1)])
    return torch.logsumexp(both, 0) - math.log(2)

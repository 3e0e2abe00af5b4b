"""Post-hoc corrections of a trained model's logits, chosen on validation data: flip test-time averaging,
logit adjustment by the training class prior (Menon et al. 2021, "Long-tail learning via logit adjustment")
and temperature scaling (Guo et al. 2017); with the expected calibration error and a reliability diagram.

Everything here is a pure function of logits, probabilities and labels; nothing loads a model or data set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np
import torch

from .evaluation import confidence_bins, expected_calibration_error, metrics

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
    def from_card(cls, card: dict[str, Any]) -> PostHoc:
        """The card's `posthoc` block without its provenance notes; the identity when the card has none."""
        block = card.get("posthoc") or {}
        return cls.from_dict({k: v for k, v in block.items() if k not in CARD_NOTES})


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _as_labels(y: torch.Tensor | np.ndarray) -> np.ndarray:
    return y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def flip_average(logits: torch.Tensor, logits_flipped: torch.Tensor) -> torch.Tensor:
    """Log of the mean of the two softmaxes: its softmax is the averaged probabilities."""
    both = torch.stack([logits.log_softmax(-1), logits_flipped.log_softmax(-1)])
    return torch.logsumexp(both, 0) - math.log(2)


def class_log_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Log class frequencies (n_classes,), each count plus one so an absent class stays finite."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64) + 1
    return np.log(counts / counts.sum())


def negative_log_likelihood(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Mean -log softmax(logits)[label]."""
    z, y = _as_tensor(logits), torch.as_tensor(_as_labels(labels), dtype=torch.long)
    return float(torch.nn.functional.cross_entropy(z, y))


def fit_temperature(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """T in [0.05, 20] minimising the NLL of softmax(logits / T). The NLL is convex in 1/T, so unimodal in
    log T: a golden-section search on log T finds the minimum."""
    z, y = _as_tensor(logits), torch.as_tensor(_as_labels(labels), dtype=torch.long)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-6:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def fit_tau(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, log_prior: np.ndarray,
            max_accuracy_drop: float = 0.01, grid: tuple[float, ...] = TAU_GRID) -> float:
    """The tau of `grid` whose argmax(logits - tau * log_prior) has the highest balanced accuracy, among those
    whose accuracy is at least that at tau = 0 minus `max_accuracy_drop`; ties and no gain give the smaller
    tau (0)."""
    z, y = _as_tensor(logits).numpy(), _as_labels(labels)
    names = [str(i) for i in range(z.shape[1])]
    prior = np.asarray(log_prior, dtype=np.float64)
    base = metrics(z.argmax(1), y, names)
    best, best_balanced = 0.0, base["balanced_accuracy"]
    for tau in grid:
        m = metrics((z - tau * prior).argmax(1), y, names)
        if m["accuracy"] >= base["accuracy"] - max_accuracy_drop - 1e-12 and m["balanced_accuracy"] > best_balanced + 1e-12:
            best, best_balanced = float(tau), m["balanced_accuracy"]
    return best


def plot_reliability(probs_before: np.ndarray, probs_after: np.ndarray, labels: np.ndarray, title: str, path,
                     n_bins: int = 15, names: tuple[str, str] = ("before", "after")) -> None:
    """Reliability diagram saved as PNG: accuracy against mean confidence per bin, before and after a
    correction, against the diagonal (ECE in the legend); below, how the confidences are spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _as_labels(labels)
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for probs, name, colour, marker in ((probs_before, names[0], "tab:red", "o"), (probs_after, names[1], "tab:blue", "s")):
        probs = np.asarray(probs, dtype=np.float64)
        conf, _, count, conf_sum, correct_sum = confidence_bins(probs, labels, n_bins)
        seen = count > 0
        ece = expected_calibration_error(probs, labels, n_bins)
        ax.plot(conf_sum[seen] / count[seen], correct_sum[seen] / count[seen], marker=marker, ms=4, color=colour,
                label=f"{name} (ECE {ece:.3f})")
        hist.hist(conf, bins=edges, histtype="step", color=colour, lw=1.2)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    hist.set_xlabel("confidence (top-class probability)")
    hist.set_ylabel("faces", fontsize=8)
    hist.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["PostHoc", "flip_average", "class_log_prior", "negative_log_likelihood", "fit_temperature", "fit_tau",
           "expected_calibration_error", "plot_reliability"]

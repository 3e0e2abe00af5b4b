"""Fitting the post-hoc corrections on validation logits (temperature, logit-adjustment tau) and drawing the
reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import torch

from deep_emotion.training.evaluation import confidence_bins, expected_calibration_error, metrics
from deep_emotion.models.posthoc import TAU_GRID, T_RANGE, _as_labels, _as_tensor

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

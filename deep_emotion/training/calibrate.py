"""Fitting the post-hoc corrections on validation logits (temperature, logit-adjustment tau) and drawing the
reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import torch

from deep_emotion.models.posthoc import T_RANGE, TAU_GRID, _as_labels, _as_tensor
from deep_emotion.training.evaluation import confidence_bins, expected_calibration_error, metrics


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


def fit_tau(
    logits: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    log_prior: np.ndarray,
    max_accuracy_drop: float = 0.01,
    grid: tuple[float, ...] = TAU_GRID,
) -> float:
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
        if (
            m["accuracy"] >= base["accuracy"] - max_accuracy_drop - 1e-12
            and m["balanced_accuracy"] > best_balanced + 1e-12
        ):
            best, best_balanced = float(tau), m["balanced_accuracy"]
    return best


def plot_reliability(
    probs_before: np.ndarray,
    probs_after: np.ndarray,
    labels: np.ndarray,
    title: str,
    path,
    n_bins: int = 15,
    names: tuple[str, str] = ("before", "after"),
) -> None:
    """Reliability diagram saved as PNG: accuracy against mean confidence per bin, before and after a
    correction, against the diagonal (ECE in the legend); below, how the confidences are spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _as_labels(labels)
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for probs, name, colour, marker in (
        (probs_before, names[0], "tab:red", "o"),
        (probs_after, names[1], "tab:blue", "s"),
    ):
        probs = np.asarray(probs, dtype=np.float64)
        conf, _, count, conf_sum, correct_sum = confidence_bins(probs, labels, n_bins)
        seen = count > 0
        ece = expected_calibration_error(probs, labels, n_bins)
        ax.plot(
            conf_sum[seen] / count[seen],
            correct_sum[seen] / count[seen],
            marker=marker,
            ms=4,
            color=colour,
            label=f"{name} (ECE {ece:.3f})",
        )
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


__all__ = [
    "class_log_prior",
    "negative_log_likelihood",
    "fit_temperature",
    "fit_tau",
    "expected_calibration_error",
    "plot_reliability",
    "consensus_tensors",
    "consensus_probabilities",
    "fit_consensus",
]


# --- the consensus of several models (models/consensus.py) -------------------------------------------------------


def consensus_tensors(
    probabilities: dict[str, np.ndarray], classes: dict[str, list[str]], order: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """model -> (N, its classes) probabilities into P (M, N, C) over `order` (zeros where a model lacks a class)
    and the mask K (M, C) of the classes each model knows."""
    models = list(probabilities)
    n = len(next(iter(probabilities.values())))
    p = torch.zeros(len(models), n, len(order), dtype=torch.float64)
    k = torch.zeros(len(models), len(order), dtype=torch.float64)
    for i, m in enumerate(models):
        for j, c in enumerate(classes[m]):
            p[i, :, order.index(c)] = torch.as_tensor(probabilities[m][:, j], dtype=torch.float64)
            k[i, order.index(c)] = 1.0
    return p, k


def consensus_probabilities(p: torch.Tensor, k: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(N, C): per class the w-weighted mean over the models that know it, normalised (models/consensus.combine)."""
    wk = w * k  # (M, C)
    mixed = (wk[:, None, :] * p).sum(0) / wk.sum(0).clamp_min(1e-12)
    return mixed / mixed.sum(1, keepdim=True).clamp_min(1e-12)


def fit_consensus(
    p: torch.Tensor, k: torch.Tensor, labels: np.ndarray, kind: str, l2: float = 1e-3, steps: int = 200
) -> torch.Tensor:
    """Weights (M, C) that minimise the consensus's negative log-likelihood of `labels` (indices into C): one per
    model ("model"), one per model and class ("class"), or all ones ("equal"). Log-weights with a small L2 pull
    towards equal weights; L-BFGS."""
    m, c = k.shape
    if kind == "equal":
        return torch.ones(m, c, dtype=torch.float64)
    theta = torch.zeros(m, 1 if kind == "model" else c, dtype=torch.float64, requires_grad=True)
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.LBFGS([theta], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        q = consensus_probabilities(p, k, theta.exp().expand(m, c))
        value = -q[torch.arange(len(y)), y].clamp_min(1e-12).log().mean() + l2 * (theta**2).sum()
        value.backward()
        return value

    opt.step(loss)
    return theta.detach().exp().expand(m, c).clone()

"""Accuracy, class-balanced scores, calibration error and confusion matrix of a model on arrays of faces."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deep_emotion.models.inputs import predict_proba
from deep_emotion.models.registry import EmotionModel


def metrics(pred: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`accuracy`, `balanced_accuracy` (mean recall) and `macro_f1` (mean F1), both over the classes present
    in `labels`, `n`, `classes`, `per_class` (recall per class name) and `confusion` (rows: true)."""
    k = len(classes)
    confusion = np.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    support, predicted, hits = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    present = support > 0
    recall = np.divide(hits, support, out=np.full(k, np.nan), where=present)
    f1 = 2 * hits[present] / (support[present] + predicted[present])  # 0 for a class never predicted right
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1.mean()) if present.any() else float("nan"),
        "n": int(len(labels)),
        "classes": list(classes),
        "per_class": {c: (None if np.isnan(r) else round(float(r), 4)) for c, r in zip(classes, recall)},
        "confusion": confusion.tolist(),
    }


def evaluate(
    model: EmotionModel,
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...] | list[str],
    tta_flip: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """`metrics()` of the top class, plus `nll` and `ece` of the softmax probabilities."""
    proba = predict_proba(model, images, tta_flip=tta_flip, device=device)
    labels = np.asarray(labels)
    result = metrics(proba.argmax(1), labels, classes)
    picked = proba[np.arange(len(labels)), labels] if len(labels) else np.ones(0)
    result["nll"] = float(-np.log(np.clip(picked, 1e-12, 1)).mean()) if len(labels) else float("nan")
    result["ece"] = expected_calibration_error(proba, labels)
    return result


def confidence_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Top-label confidence per sample, its bin (equal widths, (lo, hi]), and per bin: count, summed
    confidence, summed correctness."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    return (
        conf,
        bins,
        np.bincount(bins, minlength=n_bins),
        np.bincount(bins, conf, minlength=n_bins),
        np.bincount(bins, correct, minlength=n_bins),
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: sum over equal-width confidence bins of (bin share) x |accuracy - mean confidence|."""
    if len(labels) == 0:
        return float("nan")
    _, _, _, conf_sum, correct_sum = confidence_bins(probs, labels, n_bins)
    return float(np.abs(correct_sum - conf_sum).sum() / len(labels))


def plot_confusion(confusion: list[list[int]], classes: list[str], title: str, path) -> None:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(classes), 0.8 + 0.8 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

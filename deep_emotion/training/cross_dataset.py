"""Every shipped model on every other data set's test split, over the classes they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deep_emotion.classes import canonical, shared_classes
from deep_emotion.models.card import list_checkpoints
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.inputs import predict_proba
from deep_emotion.training.data import FaceDataset, card_data


def shared_class_accuracy(model, model_classes: list[str], ds: FaceDataset, idx: np.ndarray) -> dict[str, Any]:
    """Accuracy on the images of `idx` whose class the model knows, choosing only among the shared classes."""
    shared = shared_classes(model_classes, ds.classes)
    data_canon = np.array([canonical(c) for c in ds.classes])
    keep = idx[np.isin(data_canon[ds.labels[idx]], shared)]
    cols = [i for i, c in enumerate(model_classes) if canonical(c) in shared]
    proba = predict_proba(model, ds.images[keep])[:, cols]
    predicted = np.array([canonical(model_classes[c]) for c in cols])[proba.argmax(1)]
    truth = data_canon[ds.labels[keep]]
    return {
        "accuracy": float((predicted == truth).mean()) if len(keep) else float("nan"),
        "n": int(len(keep)),
        "shared_classes": shared,
    }


def cross_dataset_table(data_dir: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """rows: model; columns: the test split of each shipped model's data set (its card's protocol)."""
    names = names or list_checkpoints()
    models = {n: load_checkpoint(n) for n in names}
    tests: dict[str, tuple[FaceDataset, np.ndarray, str]] = {}
    for _, card in models.values():
        ds_name = card.dataset
        if ds_name in tests:
            continue
        ds, split = card_data(card, data_dir)
        tests[ds_name] = (ds, split.test, split.protocol)
    cells = {
        m: {d: shared_class_accuracy(model, list(card.labels), ds, idx) for d, (ds, idx, _) in tests.items()}
        for m, (model, card) in models.items()
    }
    return {
        "models": names,
        "datasets": list(tests),
        "protocols": {d: p for d, (_, _, p) in tests.items()},
        "cells": cells,
    }


def to_markdown(table: dict[str, Any]) -> str:
    head = "| model \\ test split | " + " | ".join(f"{d} ({table['protocols'][d]})" for d in table["datasets"]) + " |"
    lines = [head, "|---|" + "---|" * len(table["datasets"])]
    for m in table["models"]:
        row = [
            f"{table['cells'][m][d]['accuracy']:.3f} ({len(table['cells'][m][d]['shared_classes'])} cl., n={table['cells'][m][d]['n']})"  # noqa: E501
            for d in table["datasets"]
        ]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines)

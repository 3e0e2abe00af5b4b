"""Subject-independent cross-validation: one training per fold, no subject in two parts of any fold."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deep_emotion.training.loop import train
from deep_emotion.training.recipe import Recipe


def cross_validate(
    recipe: Recipe,
    data_dir: str | Path,
    n_folds: int = 10,
    epochs: int | None = None,
    run_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Train fold 0..n_folds-1 of the `subject-folds` protocol; return (and save) per-fold and mean ± std accuracy."""
    recipe = replace(recipe, protocol="subject-folds")
    run_dir = Path(run_dir or Path("runs") / f"{recipe.name}-folds")
    folds = []
    for k in range(n_folds):
        fold_dir = run_dir / f"fold{k}"
        card = train(
            recipe,
            data_dir,
            epochs=epochs,
            device=device,
            resume=True,
            run_dir=fold_dir,
            out_dir=fold_dir,
            progress=progress,
            fold=k,
            n_folds=n_folds,
        )
        folds.append(
            {
                "fold": k,
                "test_accuracy": card.metrics["test"].accuracy,
                "n_test": card.metrics["test"].n,
                "val_accuracy": card.metrics["val"].accuracy,
            }
        )
        print(f"fold {k}: test {folds[-1]['test_accuracy']:.4f} (n={folds[-1]['n_test']})", flush=True)
    acc = np.array([f["test_accuracy"] for f in folds])
    summary = {
        "name": recipe.name,
        "dataset": recipe.dataset,
        "protocol": f"subject-folds ({n_folds} folds by subject)",
        "mean_accuracy": float(acc.mean()),
        "std_accuracy": float(acc.std(ddof=1)),
        "pooled_accuracy": float(
            sum(f["test_accuracy"] * f["n_test"] for f in folds) / sum(f["n_test"] for f in folds)
        ),
        "epochs": epochs or recipe.epochs,
        "folds": folds,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

"""Learning curves (loss, train accuracy on augmented batches, validation accuracy) from training logs.

python train/plot_curves.py train/logs/fer2013.jsonl train/logs/ferplus.jsonl --out docs/learning_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for log in args.logs:
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        epochs = [r["epoch"] for r in rows]
        axes[0].plot(epochs, [r["loss"] for r in rows], label=log.stem)
        axes[1].plot(epochs, [r["val_acc"] for r in rows], label=f"{log.stem} val")
        axes[1].plot(
            epochs, [r["train_acc_augmented"] for r in rows], "--", alpha=0.6, label=f"{log.stem} train (aug.)"
        )
    axes[0].set(xlabel="epoch", ylabel="training loss (incl. λ‖W‖²)")
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

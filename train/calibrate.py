"""Choose each shipped model's post-hoc corrections on its validation split: flip test-time averaging, logit
adjustment by the training class prior (tau) and temperature scaling (T). Writes them, with raw and corrected
val/test metrics, into the card (`posthoc`), adds balanced accuracy and macro-F1 to the card's metrics, and
draws checkpoints/<name>_reliability.png (test split). The weights are not touched. Prints one JSON line per model.

    python train/calibrate.py --data-dir ../shared/data
    python train/calibrate.py --table          # README's table, from the cards
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deep_emotion.models.card import checkpoint_dir, list_checkpoints, read_cards
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.inputs import to_tensor
from deep_emotion.models.posthoc import T_RANGE, PostHoc, flip_average
from deep_emotion.training.calibrate import (
    class_log_prior,
    fit_tau,
    fit_temperature,
    negative_log_likelihood,
    plot_reliability,
)
from deep_emotion.training.data import card_data
from deep_emotion.training.evaluation import expected_calibration_error, metrics

RULE = (
    "On the validation split only: flip averaging iff it raises accuracy; tau from 0..2 (step 0.05) maximising "
    "balanced accuracy with accuracy at most 1 point below tau = 0 (ties to the smaller tau); temperature "
    "minimising NLL of the tau-adjusted logits, kept only if it lowers that NLL and lies strictly inside 0.05..20."
)


@torch.no_grad()
def _logits(
    model: torch.nn.Module, images: np.ndarray, device: str, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw logits (N, C) of the faces and of their mirror images, on the CPU."""
    model.eval()
    raw, flipped = [], []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i : i + batch_size]).to(device)
        raw.append(model(x).float().cpu())
        flipped.append(model(x.flip(-1)).float().cpu())
    return torch.cat(raw), torch.cat(flipped)


def _accuracy(logits: torch.Tensor, labels: np.ndarray) -> float:
    return float((logits.argmax(1).numpy() == labels).mean())


def _report(logits: torch.Tensor, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    m = metrics(logits.argmax(1).numpy(), labels, classes)
    probs = logits.double().softmax(1).numpy()
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"],
        "ece": expected_calibration_error(probs, labels),
        "nll": negative_log_likelihood(logits, labels),
        "per_class_recall": m["per_class"],
    }


def calibrate(name: str, data_dir: Path, device: str = "cpu") -> tuple[dict[str, Any], PostHoc, dict[str, Any]]:
    """The card (its JSON object) with `posthoc` and the extra metrics filled in, the chosen PostHoc, and test
    probabilities (raw and corrected) for the plot."""
    model, card = load_checkpoint(name, device)  # the network alone: its raw logits are what is calibrated
    ds, split = card_data(card, data_dir)
    classes = list(card.labels)  # the data set's own names, in the network's output order
    if list(ds.classes) != classes:
        raise SystemExit(f"{name}: the data's classes {list(ds.classes)} differ from the model's {classes}")
    y = {s: ds.labels[split[s]] for s in ("val", "test")}
    raw, flipped = {}, {}
    for s in ("val", "test"):
        raw[s], flipped[s] = _logits(model, ds.images[split[s]], device)

    tta = _accuracy(flip_average(raw["val"], flipped["val"]), y["val"]) > _accuracy(raw["val"], y["val"])
    out = {s: flip_average(raw[s], flipped[s]) if tta else raw[s] for s in ("val", "test")}
    log_prior = class_log_prior(ds.labels[split.train], len(classes))
    tau = fit_tau(out["val"], y["val"], log_prior)
    adjusted_val = PostHoc(tau=tau, log_prior=tuple(log_prior)).adjust(out["val"].double())
    temperature = fit_temperature(adjusted_val, y["val"])
    if (
        negative_log_likelihood(adjusted_val / temperature, y["val"]) >= negative_log_likelihood(adjusted_val, y["val"])
        or not T_RANGE[0] * 1.01 < temperature < T_RANGE[1] / 1.01
    ):
        temperature = 1.0  # no gain, or a fit run to a bound (an error-free validation split has no finite optimum)
    posthoc = PostHoc(tta_flip=tta, tau=tau, log_prior=tuple(log_prior), temperature=temperature)

    report = {
        s: {"raw": _report(raw[s], y[s], classes), "posthoc": _report(posthoc.adjust(out[s].double()), y[s], classes)}
        for s in ("val", "test")
    }
    written = copy.deepcopy(card.to_dict())  # the card as JSON, to be rewritten (a ModelCard is frozen)
    for s in ("val", "test"):
        card_acc = card.metrics[s].accuracy
        if abs(report[s]["raw"]["accuracy"] - card_acc) >= 1e-6:
            raise SystemExit(
                f"{name} {s}: accuracy {report[s]['raw']['accuracy']} differs from the card's {card_acc}: "
                "the data or the face framing is not what the card was made with"
            )
        written["metrics"][s]["balanced_accuracy"] = report[s]["raw"]["balanced_accuracy"]
        written["metrics"][s]["macro_f1"] = report[s]["raw"]["macro_f1"]
    written["posthoc"] = {
        **posthoc.to_dict(),
        "chosen_on": "val",
        "rule": RULE,
        "prior_from": "train split class frequencies",
        "metrics": report,
    }
    probs = {
        "raw": raw["test"].double().softmax(1).numpy(),
        "posthoc": posthoc.adjust(out["test"].double()).softmax(1).numpy(),
        "labels": y["test"],
    }
    return written, posthoc, probs


def table(names: list[str]) -> str:
    """README's table, from the cards (each figure: `deep-emotion evaluate --model NAME [--posthoc]`)."""
    lines = [
        "| model | flip TTA | τ | T | test accuracy | balanced accuracy | macro-F1 | ECE | rarest class: recall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, card in read_cards(names).items():
        if card.posthoc is None:
            lines.append(
                f"| `{name}` | no post-hoc block: run `python train/calibrate.py --data-dir DATA --models {name}` |"
            )
            continue
        p = card.posthoc
        raw, post = p["metrics"]["test"]["raw"], p["metrics"]["test"]["posthoc"]
        rare = card.labels[int(np.argmin(p["log_prior"]))]  # per_class_recall is keyed by the data set's names
        cells = [f"`{name}`", "on" if p["tta_flip"] else "off", f"{p['tau']:g}", f"{p['temperature']:.2f}"]
        cells += [
            f"{raw[k]:.4f} → {post[k]:.4f}" if k != "ece" else f"{raw[k]:.3f} → {post[k]:.3f}"
            for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")
        ]
        cells.append(f"{rare} {raw['per_class_recall'][rare]:.2f} → {post['per_class_recall'][rare]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--table", action="store_true", help="print README's table from the cards and stop")
    ap.add_argument("--models", help="comma-separated names (default: every shipped checkpoint)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dry-run", action="store_true", help="print the results, write nothing")
    args = ap.parse_args()

    names = args.models.split(",") if args.models else list_checkpoints()
    if args.table:
        print(table(names))
        return
    if not args.data_dir:
        ap.error("--data-dir is required (or --table)")
    for name in names:
        written, posthoc, probs = calibrate(name, args.data_dir, args.device)
        m = written["posthoc"]["metrics"]
        summary = {
            "model": name,
            "tta_flip": posthoc.tta_flip,
            "tau": posthoc.tau,
            "temperature": round(posthoc.temperature, 4),
            **{
                f"{s}_{kind}": {k: round(v, 4) for k, v in m[s][kind].items() if k != "per_class_recall"}
                for s in ("val", "test")
                for kind in ("raw", "posthoc")
            },
        }
        print(json.dumps(summary), flush=True)
        if args.dry_run:
            continue
        (checkpoint_dir() / f"{name}.json").write_text(json.dumps(written, indent=2) + "\n")
        plot_reliability(
            probs["raw"],
            probs["posthoc"],
            probs["labels"],
            f"{name}: test split, raw vs post-hoc (flip {'on' if posthoc.tta_flip else 'off'}, "
            f"τ {posthoc.tau:g}, T {posthoc.temperature:.2f})",
            checkpoint_dir() / f"{name}_reliability.png",
            names=("raw", "post-hoc"),
        )


if __name__ == "__main__":
    main()

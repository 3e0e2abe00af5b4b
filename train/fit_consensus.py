r"""The consensus of the shipped models: choose its weights on validation faces, report it once on test faces.

Faces of FER2013 (PublicTest for validation, PrivateTest for test) and FERPlus (Valid / Test) are made into photos
by the photo protocol (deep_emotion/training/photo_protocol.py) and read through one Pipeline of every shipped
model with its post-hoc corrections. Labels and predictions are canonical class names, so every model answers
every face. A face the pipeline does not find counts as a wrong answer, as in the photo protocol.

Fitting (`--split val`): equal weights, one weight per model and one per model and class are each fitted on one
half of the validation faces and scored (negative log-likelihood) on the other half, both ways round; the kind with
the lower held-out NLL is refitted on all validation faces and written to checkpoints/consensus.json.

    python train/fit_consensus.py --data-dir ../shared/data --split val --n 600 --out checkpoints/consensus.json \
        --log docs/consensus_val.json
    python train/fit_consensus.py --data-dir ../shared/data --split test --n 600 --log docs/consensus_test.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deep_emotion.classes import CANONICAL, canonical_or_label
from deep_emotion.models.consensus import ConsensusWeights
from deep_emotion.pipeline import Pipeline
from deep_emotion.training.calibrate import consensus_probabilities, consensus_tensors, fit_consensus
from deep_emotion.training.data import card_data
from deep_emotion.training.photo_protocol import pipeline_crops, scores

DATASETS = ("fer2013", "ferplus")  # data sets with photos from the wild, and official validation splits


def read_faces(pipe: Pipeline, data_dir: Path, split: str, n: int, variant: str, seed: int) -> dict:
    """Per data set: canonical labels, whether the face was found, and every model's probabilities of the found
    crops (zeros where not found), for `n` faces of `split` drawn with `seed`."""
    out = {}
    for dataset in DATASETS:
        card = next(c for c in pipe.cards.values() if c.dataset == dataset and c.description == "paper")
        ds, parts = card_data(card, data_dir)
        idx = parts[split]
        if n:
            idx = np.sort(np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False))
        labels = [canonical_or_label(ds.classes[y]) for y in ds.labels[idx]]
        if variant == "crop":
            crops, found = ds.images[idx], np.ones(len(idx), bool)
        else:
            crops, found, _ = pipeline_crops(ds.images[idx], variant, pipe.find_faces_batch, seed, indices=idx)
        probs = {}
        for name, p in pipe.read_crops(crops[found]).items():
            full = np.zeros((len(idx), p.shape[1]), np.float64)
            full[found] = p
            probs[name] = full
        out[dataset] = {"labels": labels, "found": found, "probs": probs, "split": parts.protocol}
    return out


def score(pred: list[str], labels: list[str], found: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and macro-F1 over the classes of the labels; a face not found is wrong."""
    classes = sorted(set(labels))
    y = np.array([classes.index(c) for c in labels])
    p = np.array([classes.index(c) if (f and c in classes) else -1 for c, f in zip(pred, found)])
    return {k: v for k, v in scores(p, y, len(classes)).items() if k != "recall"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--n", type=int, default=600, help="faces per data set, drawn with --seed (0: all)")
    ap.add_argument("--variant", default="context", help="photo variant (see the photo protocol), or crop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="with --split val: where the chosen weights go")
    ap.add_argument("--log", type=Path, help="the figures as JSON")
    args = ap.parse_args()
    t0 = time.time()
    pipe = Pipeline.from_names(None)
    models = list(pipe.models)
    classes = {m: list(pipe.models[m].classes) for m in models}
    order = [c for c in CANONICAL if any(c in cs for cs in classes.values())]
    data = read_faces(pipe, args.data_dir, args.split, args.n, args.variant, args.seed)
    probs = {m: np.concatenate([d["probs"][m] for d in data.values()]) for m in models}
    labels = [c for d in data.values() for c in d["labels"]]
    found = np.concatenate([d["found"] for d in data.values()])
    y = np.array([order.index(c) for c in labels])
    p, k = consensus_tensors(probs, classes, order)
    keep = torch.as_tensor(found)
    log: dict = {
        "split": args.split,
        "variant": args.variant,
        "n_per_dataset": args.n,
        "seed": args.seed,
        "datasets": {d: v["split"] for d, v in data.items()},
        "found": float(found.mean()),
        "models": models,
    }

    if args.split == "val":
        rng = np.random.default_rng(args.seed)
        half = rng.permutation(len(y)) < len(y) // 2
        held_out = {}
        for kind in ("equal", "model", "class"):
            nll = []
            for a, b in ((half, ~half), (~half, half)):
                fa, fb = torch.as_tensor(a & found), torch.as_tensor(b & found)
                w = fit_consensus(p[:, fa], k, y[a & found], kind)
                q = consensus_probabilities(p[:, fb], k, w)
                nll.append(float(-q[torch.arange(int(fb.sum())), torch.as_tensor(y[b & found])].log().mean()))
            held_out[kind] = round(float(np.mean(nll)), 4)
        kind = min(held_out, key=held_out.get)
        w = fit_consensus(p[:, keep], k, y[found], kind)
        weights = (
            {
                m: (
                    {"*": round(float(w[i, 0]), 4)}
                    if kind == "model"
                    else {c: round(float(w[i, j]), 4) for j, c in enumerate(order) if k[i, j] > 0}
                )
                for i, m in enumerate(models)
            }
            if kind != "equal"
            else {}
        )
        chosen = ConsensusWeights(
            kind,
            weights,
            {
                "chosen_on": f"validation photos ({args.variant}): "
                + ", ".join(f"{d} {v['split']} val" for d, v in data.items()),
                "rule": "the kind with the lowest held-out NLL (two halves, fitted on one, scored on the other)",
                "held_out_nll": held_out,
                "n": int(found.sum()),
                "seed": args.seed,
            },
        )
        log["held_out_nll"], log["chosen"] = held_out, chosen.to_dict()
        if args.out:
            args.out.write_text(json.dumps(chosen.to_dict(), indent=2) + "\n")
        print(f"held-out NLL: {held_out}; chosen: {kind}", file=sys.stderr)
    else:
        from deep_emotion.models.card import checkpoint_dir

        chosen = ConsensusWeights.read(checkpoint_dir() / "consensus.json")
        log["weights"] = chosen.to_dict()

    w = torch.tensor([[chosen.weight(m, c) for c in order] for m in models], dtype=torch.float64)
    q = consensus_probabilities(p, k, w).numpy()
    rows = {}
    start = 0
    for dataset, d in data.items():
        sl = slice(start, start + len(d["labels"]))
        start += len(d["labels"])
        rows[dataset] = {
            m: score([classes[m][int(i)] for i in probs[m][sl].argmax(1)], d["labels"], d["found"]) for m in models
        }
        rows[dataset]["consensus"] = score([order[int(i)] for i in q[sl].argmax(1)], d["labels"], d["found"])
    log["scores"] = rows
    log["seconds"] = round(time.time() - t0, 1)
    if args.log:
        args.log.write_text(json.dumps(log, indent=2) + "\n")
    for dataset, r in rows.items():
        print(f"{dataset} ({args.split}, {args.variant} photos):")
        for m, s in r.items():
            print(
                f"  {m:>13}: accuracy {s['accuracy']:.4f}  balanced {s['balanced_accuracy']:.4f}  "
                f"macro-F1 {s['macro_f1']:.4f}"
            )


if __name__ == "__main__":
    main()

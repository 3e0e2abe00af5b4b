"""Faithfulness of the occlusion maps on FER2013 PrivateTest faces, and which regions matter per emotion.

For N faces (default 500, drawn at random with seed 0 from PrivateTest): the paper's flip and drop maps and
Captum's Occlusion (window 8, stride 2, black), and a random map; deletion AUC (lower is better) and
insertion AUC (higher is better) of the predicted class's probability. Then the flip and drop maps averaged
per predicted class (each map scaled to sum 1), with the share of the map on the eye/brow band and
on the mouth band, saved as a PNG of heatmaps (no face pixels are drawn).

    python benchmarks/faithfulness.py --data-dir ../shared/data --out docs/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from deep_emotion import explain  # noqa: E402
from deep_emotion.checkpoints import load_checkpoint  # noqa: E402
from deep_emotion.data import load_dataset  # noqa: E402
from deep_emotion.preprocess import to_tensor  # noqa: E402

EYES = slice(10, 24)  # rows of the 48x48 FER crop holding brows and eyes
MOUTH = slice(30, 44)  # rows holding the mouth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    model, card = load_checkpoint(args.model)
    ds = load_dataset(card["dataset"], args.data_dir)
    test = ds.split("paper").test
    idx = np.sort(np.random.default_rng(0).choice(test, min(args.n, len(test)), replace=False))  # all classes
    classes = card["classes"]
    names = ["paper_flip", "paper_drop", "captum", "random"]
    auc = {n: {"deletion": [], "insertion": []} for n in names}
    per_class = {c: {"flip": np.zeros((48, 48)), "drop": np.zeros((48, 48)), "n": 0} for c in classes}
    max_captum_diff = 0.0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for k, i in enumerate(idx):
            x = to_tensor(ds.images[i])
            p0, p, masks = explain.occluded_probabilities(model, x, args.window, args.stride, batch_size=512)
            maps = explain.maps_from_probabilities(p0, p, masks)
            captum = explain.captum_occlusion(model, x, args.window, args.stride, perturbations_per_eval=512)
            max_captum_diff = max(max_captum_diff, float((captum - maps["drop"]).abs().max()))
            target = int(p0.argmax())
            for name, m in zip(names, [maps["flip"], maps["drop"], captum, explain.random_map(48, seed=k)]):
                for kind in ("deletion", "insertion"):
                    auc[name][kind].append(explain.perturbation_curve(model, x, m, kind, target=target)[1])
            c = classes[target]
            for mode in ("flip", "drop"):
                m = maps[mode].clamp(min=0).numpy()
                if m.sum() > 0:
                    per_class[c][mode] += m / m.sum()
            per_class[c]["n"] += 1
    table = {n: {k: round(float(np.mean(v)), 4) for k, v in d.items()} for n, d in auc.items()}
    regions = {}
    for c, d in per_class.items():
        if d["n"]:
            m = d["drop"] / d["n"]
            regions[c] = {"faces": d["n"], "eyes_brows_share": round(float(m[EYES].sum()), 3),
                          "mouth_share": round(float(m[MOUTH].sum()), 3)}
    result = {"benchmark": "faithfulness", "model": card["name"], "faces": len(idx),
              "split": "FER2013 PrivateTest, N faces drawn at random (seed 0)", "window": args.window, "stride": args.stride,
              "auc": table, "max_abs_difference_captum_vs_drop": max_captum_diff,
              "regions_by_predicted_class (drop map, each face's map sums to 1)": regions,
              "bands": {"eyes_brows_rows": [EYES.start, EYES.stop], "mouth_rows": [MOUTH.start, MOUTH.stop]},
              "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "faithfulness.json").write_text(json.dumps(result, indent=2) + "\n")
        plot(per_class, args.out / "occlusion_by_class.png", card["name"])


def plot(per_class: dict, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c, d in per_class.items() if d["n"]]
    fig, axes = plt.subplots(2, len(shown), figsize=(1.9 * len(shown), 4.2))
    for j, c in enumerate(shown):
        for r, mode in enumerate(("flip", "drop")):
            ax = axes[r, j]
            ax.imshow(per_class[c][mode] / per_class[c]["n"], cmap="inferno")
            ax.axhline(EYES.start, color="c", lw=0.5)
            ax.axhline(MOUTH.start, color="lime", lw=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{c} (n={per_class[c]['n']})", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"paper {mode}", fontsize=8)
    fig.suptitle(f"{model}: occlusion maps averaged per predicted class (cyan: eye band, green: mouth band)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

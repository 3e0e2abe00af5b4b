"""How coarse may the occlusion maps' default stride be? Each stride's maps against stride 2's, on validation faces.

For N validation faces of each default model's data set (drawn with seed 0; FER2013 PublicTest, FERPlus Valid)
and each stride at the default window (8): the paper's flip map and the probability-drop map, with
- faithfulness: insertion minus deletion AUC (explain.faithfulness; higher is better), mean over faces, beside a
  random map's;
- agreement with the stride-2 map on faces where both maps vary (a flip map is flat, all 0, where no window
  changes the label; such faces are counted, not compared): Pearson correlation of the 48x48 values, and how
  often the peak (the centre of the map's highest pixels) lies within 4 pixels of stride 2's;
- the CPU seconds of the two maps from their shared occluded passes (process time, one thread).
Models as the app shows them (the cards' post-hoc corrections). Prints JSON; --out writes it too.

    python benchmarks/occlusion_stride.py --data-dir ../shared/data --n 200 --out docs/occlusion_stride_val.json
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
from deep_emotion.models.card import default_models, read_cards  # noqa: E402
from deep_emotion.models.inputs import to_tensor  # noqa: E402
from deep_emotion.pipeline import Pipeline, parse_names  # noqa: E402
from deep_emotion.training.data import card_data  # noqa: E402

METHODS = ("occlusion-flip", "occlusion-drop")


def peak(values: np.ndarray) -> np.ndarray:
    """(row, column) of the highest value; the mean position of ties (a flat map: its centre)."""
    rows, cols = np.nonzero(values >= values.max())
    return np.array([rows.mean(), cols.mean()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--models", help="comma-separated (default: the app's default models)")
    ap.add_argument("--n", type=int, default=200, help="validation faces per model")
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--strides", default="2,3,4")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.n < 2:
        ap.error("--n: at least 2 faces (standard errors)")
    torch.set_num_threads(1)  # CPU seconds of one thread, comparable across strides
    names = parse_names(args.models) or default_models(read_cards())
    strides = [int(s) for s in args.strides.split(",")]
    if strides[0] != min(strides):
        ap.error("--strides: the finest first (the others are compared with it)")
    out = {
        "benchmark": "occlusion_stride",
        "window": args.window,
        "strides": strides,
        "n": args.n,
        "models": {},
        "environment": environment(),
    }
    pipe = Pipeline.from_names(names, posthoc=True)  # the models as the app shows them
    for name, (model, card) in pipe.models.items():
        ds, split = card_data(card, args.data_dir)
        idx = np.sort(np.random.default_rng(0).choice(split.val, min(args.n, len(split.val)), replace=False))
        scores = {s: {m: [] for m in (*METHODS, "random")} for s in strides}
        agree = {s: {m: {"r": [], "peak": [], "flat": 0} for m in METHODS} for s in strides[1:]}
        seconds = {s: [] for s in strides}
        t0 = time.perf_counter()
        for k, i in enumerate(idx):
            x = to_tensor(ds.images[i])
            with torch.inference_mode():
                target = int(model(x).argmax(1))
                maps = {}
                for s in strides:
                    c = time.process_time()
                    maps[s], skipped = explain.explain_face(model, x, target, METHODS, explain.Context(args.window, s))
                    seconds[s].append(time.process_time() - c)
                    assert not skipped, skipped
                    values = {m: torch.from_numpy(maps[s][m].values) for m in METHODS}
                    values["random"] = explain.random_map(48, seed=k)
                    for m, f in explain.faithfulness(model, x, values, target).items():
                        scores[s][m].append(f["difference"])
            for s in strides[1:]:
                for m in METHODS:
                    a, b = maps[strides[0]][m].values.ravel(), maps[s][m].values.ravel()
                    if a.std() == 0 or b.std() == 0:
                        agree[s][m]["flat"] += 1
                        continue
                    agree[s][m]["r"].append(float(np.corrcoef(a, b)[0, 1]))
                    agree[s][m]["peak"].append(
                        float(np.abs(peak(maps[strides[0]][m].values) - peak(maps[s][m].values)).max() <= 4)
                    )
        out["models"][name] = {
            "faces": len(idx),
            "split": f"{card.dataset} validation",
            "seconds": round(time.perf_counter() - t0, 1),
            "strides": {
                str(s): {
                    "windows": explain.n_windows(48, args.window, s),
                    "cpu_s_both_maps_median": round(float(np.median(seconds[s])), 4),
                    "faithfulness": {
                        m: {
                            "mean": round(float(np.mean(v)), 4),
                            "sem": round(float(np.std(v, ddof=1) / np.sqrt(len(v))), 4),
                        }
                        for m, v in scores[s].items()
                    },
                    **(
                        {
                            "paired_difference_vs_finest": {
                                m: {
                                    "mean": round(float(np.mean(np.subtract(scores[s][m], scores[strides[0]][m]))), 4),
                                    "sem": round(
                                        float(
                                            np.std(np.subtract(scores[s][m], scores[strides[0]][m]), ddof=1)
                                            / np.sqrt(len(idx))
                                        ),
                                        4,
                                    ),
                                }
                                for m in METHODS
                            },
                            "agreement_with_finest": {
                                m: {
                                    "faces_compared": len(a["r"]),
                                    "faces_with_a_flat_map": a["flat"],
                                    "pearson_median": round(float(np.median(a["r"])), 3) if a["r"] else None,
                                    "peak_within_4px": round(float(np.mean(a["peak"])), 3) if a["r"] else None,
                                }
                                for m, a in agree[s].items()
                            },
                        }
                        if s != strides[0]
                        else {}
                    ),
                }
                for s in strides
            },
        }
        print(f"{name}: done in {out['models'][name]['seconds']} s", file=sys.stderr)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Occlusion maps: the batched paper map vs the paper's per-window loop vs Captum's Occlusion (default and best
`perturbations_per_eval`), for several window/stride pairs, on one face. Prints JSON with medians.

    python benchmarks/occlusion.py [--model fer2013] [--repeats 5] [--profile] [--fold on|off|both]

--fold on (as shipped): the network's exact folds for every method, plus the batched map's incremental pass
(deep_emotion/explain/incremental.py); off: every method on the network evaluated layer by layer
(model.set_fold(False)); both: one run of each, interleaved per window/stride pair. The two targets at 8/2
are also measured as medians of back-to-back pairs (--pairs), steadier than ratios of separate medians.

--profile adds where the batched map's time goes at 8/2 (torch.profiler, self CPU time per operator).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment, median_time, paired_ratio  # noqa: E402

from deep_emotion import explain  # noqa: E402
from deep_emotion.faces.detect import detect_faces  # noqa: E402
from deep_emotion.faces.images import load_image  # noqa: E402
from deep_emotion.models.card import list_checkpoints  # noqa: E402
from deep_emotion.models.checkpoints import load_checkpoint  # noqa: E402
from deep_emotion.models.inputs import to_tensor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(4, 2), (8, 2), (8, 4), (12, 6)]
PPE = [16, 64, 128, 256, 529]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="add the operator shares of the batched map at 8/2")
    ap.add_argument("--pairs", type=int, default=15, help="back-to-back pairs for the 8/2 target ratios")
    ap.add_argument(
        "--fold",
        default="on",
        choices=["on", "off", "both"],
        help="eval-mode re-expressions of the first blocks (deep_emotion/models/fold.py)",
    )
    args = ap.parse_args()
    model, card = (
        load_checkpoint(args.model) if args.model in list_checkpoints() or Path(args.model).exists() else (None, None)
    )
    if model is None:
        raise SystemExit(f"model {args.model} not found")
    face = detect_faces(load_image(ROOT / "webapp" / "examples" / "astronaut.jpg"))[0]
    x = to_tensor(face.crop)
    rows = []
    folds = {"on": [True], "off": [False], "both": [True, False]}[args.fold]
    with torch.inference_mode():
        for (w, s), fold in [(pair, f) for pair in PAIRS for f in folds]:
            model.set_fold(fold)
            n = explain.n_windows(48, w, s)
            batched = median_time(lambda: explain.occlusion_map(model, x, w, s, "flip"), args.repeats)
            loop = median_time(lambda: explain.occlusion_map_loop(model, x, w, s, "flip"), max(1, args.repeats // 2))
            captum_default = median_time(lambda: explain.captum_occlusion(model, x, w, s), max(1, args.repeats // 2))
            per_ppe = {
                p: median_time(lambda: explain.captum_occlusion(model, x, w, s, perturbations_per_eval=p), args.repeats)
                for p in PPE
                if p <= n
            }
            best_ppe = min(per_ppe, key=per_ppe.get)
            rows.append(
                {
                    "window": w,
                    "stride": s,
                    "fold": fold,
                    "occluded_copies": n,
                    "batched_s": round(batched, 5),
                    "loop_s": round(loop, 5),
                    "captum_default_s": round(captum_default, 5),
                    "captum_best_s": round(per_ppe[best_ppe], 5),
                    "captum_best_perturbations_per_eval": best_ppe,
                    "speedup_vs_loop": round(loop / batched, 2),
                    "fraction_of_captum_default": round(batched / captum_default, 4),
                    "fraction_of_captum_best": round(batched / per_ppe[best_ppe], 3),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        paired = {}
        for fold in folds:  # the two targets, as medians of back-to-back pairs
            model.set_fold(fold)
            paired[f"fold_{'on' if fold else 'off'}"] = {
                "batched_over_loop": paired_ratio(
                    lambda: explain.occlusion_map(model, x, 8, 2, "flip"),
                    lambda: explain.occlusion_map_loop(model, x, 8, 2, "flip"),
                    args.pairs,
                ),
                "batched_over_captum_default": paired_ratio(
                    lambda: explain.occlusion_map(model, x, 8, 2, "flip"),
                    lambda: explain.captum_occlusion(model, x, 8, 2),
                    args.pairs,
                ),
            }
            print(json.dumps(paired), file=sys.stderr, flush=True)
    model.set_fold(folds[0])
    shares = operator_shares(model, x) if args.profile else None
    print(
        json.dumps(
            {
                "benchmark": "occlusion",
                "model": card.name,
                "batch_size": 128,
                "repeats": args.repeats,
                "targets_at_8_2": {"speedup_vs_loop": ">= 5", "fraction_of_captum_default": "<= 0.1"},
                "rows": rows,
                "paired_at_8_2": paired,
                "operator_shares_at_8_2": shares,
                "environment": environment(),
            },
            indent=2,
        )
    )


def operator_shares(model, x: torch.Tensor, top: int = 6) -> dict[str, float]:
    """Fraction of the batched 8/2 map's self CPU time spent in each of the `top` costliest operators."""
    from torch.profiler import profile

    with torch.inference_mode(), profile() as prof:
        for _ in range(5):
            explain.occlusion_map(model, x, 8, 2, "flip")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {e.key: round(e.self_cpu_time_total / total, 3) for e in events[:top]}


if __name__ == "__main__":
    main()

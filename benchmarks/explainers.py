"""Time of every explanation method for one face and one model, warm, window 8 / stride 2. Prints JSON.

For each model (default: the bundled paper-architecture models and fer2013-wide), as the app loads them (with
their cards' post-hoc corrections): the median time of each method alone, of the occlusion-only view the app
used to show (the paper's flip map and Captum Occlusion from one set of occluded passes, with the STN view),
of every map together (IG 50 steps, SmoothGrad 20 samples, Grad-CAM, facial regions, both occlusion maps), and
of the faithfulness scores of those maps; and the ratio every-map / occlusion-only (target <= 2).

    python benchmarks/explainers.py [--repeats 9] [--models fer2013,ferplus]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OCCLUSION_ONLY = ("occlusion-flip", "captum-occlusion")
EVERY_MAP = ("occlusion-flip", "occlusion-drop", "integrated-gradients", "smoothgrad", "gradcam", "regions")


def paired_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, the functions called in turn within each repeat (so that a slow spell
    of this shared machine hits them alike), after one warm-up round."""
    times = {k: [] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--models", help="comma-separated (default: the paper-architecture models and fer2013-wide)")
    args = ap.parse_args()

    from PIL import Image

    from deep_emotion import AnalysisOptions, Pipeline, list_explainers
    from deep_emotion.models.card import default_models, read_cards
    from deep_emotion.pipeline import parse_names

    names = parse_names(args.models) or default_models(read_cards()) + ["fer2013-wide"]
    pipe = Pipeline.from_names(names, posthoc=True)  # as the app loads them
    face = pipe.find_faces(Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg"))[0]
    rows = {}
    for name in pipe.models:

        def view(methods, faithfulness=False):
            options = AnalysisOptions(methods, 8, 2, faithfulness=faithfulness)
            return lambda: pipe.explain(face, [name], options)

        fns = {m: view((m,)) for m in list_explainers()}
        fns |= {
            "occlusion_only_view": view(OCCLUSION_ONLY),
            "every_map_view": view(EVERY_MAP),
            "every_map_with_faithfulness": view(EVERY_MAP, True),
        }
        t = paired_medians(fns, args.repeats)
        rows[name] = {
            "seconds": {k: round(v, 4) for k, v in t.items()},
            "every_map_over_occlusion_only": round(t["every_map_view"] / t["occlusion_only_view"], 2),
            "faithfulness_over_every_map": round(t["every_map_with_faithfulness"] / t["every_map_view"], 2),
        }
    print(
        json.dumps(
            {
                "benchmark": "explainers",
                "face": "the example photo's face, 48x48",
                "window": 8,
                "stride": 2,
                "posthoc": True,
                "every_map": list(EVERY_MAP),
                "occlusion_only": list(OCCLUSION_ONLY),
                "target_every_map_over_occlusion_only": 2.0,
                "models": rows,
                "repeats": args.repeats,
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

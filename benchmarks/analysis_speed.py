"""Speed of the whole analysis path on this machine, warm (models and MTCNN loaded). Prints JSON.

- a 1280x720 photo with one face: MTCNN detection alone vs the full analysis (detection, crop, every bundled
  model's prediction, STN view, the paper's occlusion map and Captum's at window 8 / stride 2 — the other maps
  are timed in benchmarks/explainers.py), with each stage's share;
- a change of window/stride only (faces reused: only the maps are recomputed);
- a 24-megapixel photo vs the 1280x720 one;
- Captum run by Captum itself rather than derived from the shared occluded passes (context);
- cold start: a fresh process that imports the app, loads the models and analyses the example photo;
- the cost of the cards' post-hoc corrections (the app's default; flip averaging doubles every pass): each model's
  view with and without them (--no-posthoc measures the network alone throughout).

    python benchmarks/analysis_speed.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment, median_time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "webapp" / "examples" / "astronaut.jpg"
OCCLUSION_MAPS = ("occlusion-flip", "captum-occlusion")
NETWORK_ALONE = " (network alone)"  # the pipeline's name for a model without its card's corrections

COLD = f"""
import time, sys
t0 = time.perf_counter()
sys.path.insert(0, {str(ROOT / "webapp")!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / "webapp" / "app.py")!r}, default_timeout=600).run()
assert not at.exception and at.subheader
print(time.perf_counter() - t0)
"""


def photo(width: int, height: int):
    """The astronaut's 512x512 photo centred on a grey canvas of the given size, scaled with it."""
    from PIL import Image

    src = Image.open(EXAMPLE).convert("RGB")
    side = min(width, height)
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(src.resize((side, side), Image.Resampling.BILINEAR), ((width - side) // 2, (height - side) // 2))
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--models", help="comma-separated (default: every bundled model)")
    ap.add_argument(
        "--posthoc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="models with their cards' post-hoc corrections, as the app loads them",
    )
    args = ap.parse_args()

    from deep_emotion import AnalysisOptions, Pipeline
    from deep_emotion.models.card import list_checkpoints
    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.pipeline import parse_names

    t = time.perf_counter()
    names = parse_names(args.models) or list_checkpoints()
    models = {n: load_checkpoint(n, posthoc=args.posthoc) for n in names}
    load_s = time.perf_counter() - t
    # one pipeline: the models as the app loads them, and each network alone (for the post-hoc cost)
    raw = {n: f"{n}{NETWORK_ALONE}" for n in names}
    pipe = Pipeline({**models, **{raw[n]: load_checkpoint(n) for n in names}})
    hd, big = photo(1280, 720), photo(6000, 4000)
    r = args.repeats

    occlusion = AnalysisOptions(OCCLUSION_MAPS, 8, 2)  # the paper's map and Captum's (explainers.py: the rest)
    detect = median_time(lambda: pipe.find_faces(hd), r)
    full = median_time(lambda: pipe.analyze(hd, names, occlusion), r)
    faces = pipe.find_faces(hd)
    assert len(faces) == 1, "the benchmark photo must hold exactly one face"
    per_model = {n: median_time(lambda n=n: pipe.explain(faces[0], [n], occlusion), r) for n in names}
    per_model_raw = {n: median_time(lambda n=n: pipe.explain(faces[0], [raw[n]], occlusion), r) for n in names}
    rewindow = median_time(lambda: pipe.analyze(hd, names, AnalysisOptions(OCCLUSION_MAPS, 12, 4), faces=faces), r)
    big_full = median_time(lambda: pipe.analyze(big, names, occlusion), max(3, r // 2))
    big_detect = median_time(lambda: pipe.find_faces(big), max(3, r // 2))
    exact = median_time(
        lambda: pipe.analyze(hd, names, AnalysisOptions(OCCLUSION_MAPS, 8, 2, captum_itself=True), faces=faces),
        max(3, r // 2),
    )

    result = {
        "benchmark": "analysis_speed",
        "models": list(models),
        "photo": "1280x720, one face",
        "detection_s": round(detect, 4),
        "full_analysis_s": round(full, 4),
        "full_over_detection": round(full / detect, 2),
        "target_full_over_detection": 3.0,
        "stage_share": {
            "detection_and_crop": round(detect / full, 3),
            **{f"model_{n}": round(s / full, 3) for n, s in per_model.items()},
        },
        "posthoc": args.posthoc,
        "per_model_view_s": {n: round(v, 4) for n, v in per_model.items()},
        "per_model_view_network_alone_s": {n: round(v, 4) for n, v in per_model_raw.items()},
        "posthoc_over_network_alone": {n: round(per_model[n] / per_model_raw[n], 2) for n in names},
        "rewindow_only_s": round(rewindow, 4),
        "photo_24mp_full_s": round(big_full, 4),
        "photo_24mp_detection_s": round(big_detect, 4),
        "ratio_24mp_over_1280x720": round(big_full / full, 2),
        "target_ratio_24mp": 1.5,
        "with_captum_itself_s": round(exact, 4),
        "model_load_s": round(load_s, 3),
        "repeats": r,
    }
    if not args.no_cold:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, cwd=ROOT)
        result["cold_start_s"] = (
            round(time.perf_counter() - t, 2) if out.returncode == 0 else f"failed: {out.stderr[-300:]}"
        )
    result["environment"] = environment()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

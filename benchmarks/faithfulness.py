"""Which map to trust: every explanation method scored for faithfulness on FER2013 PrivateTest faces, and which
facial regions matter per emotion (the paper's Figure 12, redone with region ablation).

For N faces (default 500, drawn at random with seed 0 from PrivateTest) and one model (default `fer2013`, with its
card's post-hoc corrections as the app shows it; --no-posthoc: the network alone):
- every method of the registry (window 8, stride 2 for occlusion; IG 50 steps; SmoothGrad 20 samples) and a random
  map; deletion AUC (lower is better), insertion AUC (higher is better) and their difference, mean over faces, with
  how often each method is the most faithful map of a face;
- Captum's `infidelity` (Gaussian perturbations, sigma 0.1, 16 samples, on the probability, maps rescaled to their
  best fit (normalize=True) so that units do not matter; lower is better) of each
  map on every face, and `sensitivity_max` (how much the map moves under noise of radius 0.02; lower is better) of
  the gradient methods and region ablation on the first `--sensitivity-faces` faces;
- region ablation (eyes, brows, nose, mouth, rest; each blurred away) per predicted class: the mean fall of the
  class's probability per region and the share of faces whose top region it is. Landmarks: MTCNN's on the crop
  upscaled x4 (as an upload of the crop would be), the typical FER2013 positions where it finds no face.

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
from deep_emotion.models.inputs import to_tensor  # noqa: E402
from deep_emotion.pipeline import Pipeline  # noqa: E402
from deep_emotion.training.data import load_dataset  # noqa: E402

SENSITIVE = ("integrated-gradients", "smoothgrad", "gradcam", "regions")


def landmarks_of(pipe: Pipeline, crop: np.ndarray) -> np.ndarray | None:
    """MTCNN's landmarks on the crop upscaled x4, in the crop's own pixels; None when it finds no face (the
    pipeline then reads the whole picture as the face: no landmarks)."""
    from PIL import Image

    faces = pipe.find_faces(Image.fromarray(crop).resize((192, 192), Image.Resampling.BICUBIC).convert("RGB"))
    return None if not faces or not faces[0].detected or faces[0].landmarks is None else faces[0].landmarks / 4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--posthoc", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--sensitivity-faces", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from captum.metrics import infidelity, sensitivity_max

    pipe = Pipeline.from_names(args.model, posthoc=args.posthoc)  # faces' landmarks and the model
    model, card = pipe.models[pipe.names[0]]
    ds = load_dataset(card.dataset, args.data_dir)
    test = ds.split("paper").test
    idx = np.sort(np.random.default_rng(0).choice(test, min(args.n, len(test)), replace=False))  # all classes
    classes = list(card.labels)  # the data set's own names, as the regions table has always used
    methods = explain.list_explainers()
    names = methods + ["random"]
    scores = {n: {"deletion": [], "insertion": [], "difference": [], "infidelity": []} for n in names}
    best = {n: 0 for n in names}
    sensitivity = {m: [] for m in SENSITIVE}
    seconds = {m: [] for m in methods}
    regions = {c: {"faces": 0, **{r: [] for r in explain.REGIONS}, "top": []} for c in classes}
    own_landmarks = 0
    prob = lambda inp: model(inp).softmax(1)  # noqa: E731

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.1
        return noise, inputs - noise

    t0 = time.perf_counter()
    for k, i in enumerate(idx):
        x = to_tensor(ds.images[i])
        marks = landmarks_of(pipe, ds.images[i])
        own_landmarks += marks is not None
        with torch.inference_mode():
            target = int(model(x).argmax(1))
            ctx = explain.Context(8, 2, landmarks=marks)
            maps, skipped = explain.explain_face(model, x, target, methods, ctx)
            assert not skipped, skipped
            for m in methods:
                seconds[m].append(maps[m].seconds)
            values = {n: torch.from_numpy(m.values) for n, m in maps.items()} | {
                "random": explain.random_map(48, seed=k)
            }
            faith = explain.faithfulness(model, x, values, target)
        for n, f in faith.items():
            for key in ("deletion", "insertion", "difference"):
                scores[n][key].append(f[key])
        best[max((n for n in faith if n != "random"), key=lambda n: faith[n]["difference"])] += 1
        with torch.no_grad():
            for n, v in values.items():
                torch.manual_seed(k)
                scores[n]["infidelity"].append(
                    float(
                        infidelity(
                            prob, perturb, x, v.view(1, 1, 48, 48), target=target, n_perturb_samples=16, normalize=True
                        )
                    )
                )
        if k < args.sensitivity_faces:
            for m in SENSITIVE:

                def explain_fn(inp, m=m, **_):  # a batch of perturbed faces (maybe in a tuple), one map each
                    fn = explain.EXPLAINERS[m].fn
                    batch = inp[0] if isinstance(inp, tuple) else inp
                    out = torch.stack(
                        [torch.from_numpy(fn(model, face[None], target, ctx).values)[None] for face in batch]
                    )
                    return (out,) if isinstance(inp, tuple) else out

                torch.manual_seed(k)
                sensitivity[m].append(float(sensitivity_max(explain_fn, x, perturb_radius=0.02, n_perturb_samples=5)))
        c = classes[target]
        regions[c]["faces"] += 1
        for r in explain.REGIONS:
            regions[c][r].append(maps["regions"].regions.get(r, 0.0))
        regions[c]["top"].append(next(iter(maps["regions"].regions)))
        if (k + 1) % 50 == 0:
            print(f"{k + 1}/{len(idx)} faces, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    table = {n: {key: round(float(np.mean(v)), 4) for key, v in d.items() if v} for n, d in scores.items()}
    for n in names:
        table[n]["most_faithful_share"] = round(best[n] / len(idx), 3)
        if n in sensitivity and sensitivity[n]:
            table[n]["sensitivity_max"] = round(float(np.mean(sensitivity[n])), 4)
        if n in seconds:
            table[n]["median_ms"] = round(1000 * float(np.median(seconds[n])), 1)
    by_class = {}
    for c, d in regions.items():
        if d["faces"]:
            by_class[c] = {
                "faces": d["faces"],
                "mean_fall": {r: round(float(np.mean(d[r])), 4) for r in explain.REGIONS},
                "top_region_share": {r: round(d["top"].count(r) / d["faces"], 3) for r in explain.REGIONS},
            }
    result = {
        "benchmark": "faithfulness",
        "model": card.name,
        "posthoc": args.posthoc,
        "faces": len(idx),
        "split": "FER2013 PrivateTest, N faces drawn at random (seed 0)",
        "window": 8,
        "stride": 2,
        "target": "each face's predicted class",
        "methods": table,
        "note": "captum-occlusion is derived from the occluded passes of occlusion-drop (equal by definition, "
        "tests/test_explain.py checks Captum's own run against it), so the two tie; ties go to the first",
        "faces_with_own_landmarks": own_landmarks,
        "regions_by_predicted_class": by_class,
        "sensitivity_faces": min(args.sensitivity_faces, len(idx)),
        "seconds": round(time.perf_counter() - t0, 1),
        "environment": environment(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"faithfulness_{card.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Measure how a data set's own face crops sit around MTCNN's box, to frame uploaded faces the same way.

Training faces (never validation or test) are put into `context` photos (the photo protocol's variant: the face
at 15-40 % of a 480x360 frame, mirrored and blurred around it), MTCNN runs with the shipped settings, and for
every face found (IoU >= 0.25 with the true square) the true square's side is compared with MTCNN's box:
`side / longer box side` gives the margin that reproduces the data set's framing (side = box x (1 + 2 margin)),
and the centre offsets say whether the square should move. Prints JSON; --out saves it.

    python train/fit_framing.py --data-dir ../shared/data --datasets fer2013,ferplus,ckplus --out train/framing_fit.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deep_emotion.faces.detect import Detector, iou
from deep_emotion.faces.framing import DEFAULT_FRAMING
from deep_emotion.training.data import load_dataset
from deep_emotion.training.photo_protocol import MATCH_IOU, make_photo

# the pipeline's face finder with the shipped settings (`Pipeline.find_faces_batch` holds one like it); no model is
# needed, and MTCNN's own answer is what is measured (no whole-picture fallback)
FIND = Detector(framing=DEFAULT_FRAMING, whole_picture=False).batch


def measure(name: str, data_dir: Path, n: int, seed: int) -> dict:
    ds = load_dataset(name, data_dir)
    train = ds.split(None, seed=0).train
    idx = np.sort(np.random.default_rng(seed).choice(train, min(n, len(train)), replace=False))
    ratio, dx, dy = [], [], []
    for start in range(0, len(idx), 32):
        part = idx[start : start + 32]
        photos = [make_photo(ds.images[i], "context", int(i), seed) for i in part]
        for photo, found in zip(photos, FIND([p.image for p in photos])):
            if not found or iou(found[0].box, photo.truth) < MATCH_IOU:
                continue
            (x0, y0, x1, y1), (t0, u0, t1, u1) = found[0].box, photo.truth
            side = max(x1 - x0, y1 - y0)
            ratio.append((t1 - t0) / side)
            dx.append(((t0 + t1) - (x0 + x1)) / 2 / side)
            dy.append(((u0 + u1) - (y0 + y1)) / 2 / side)

    def q(a: list[float]) -> dict:
        return {k: round(float(v), 4) for k, v in zip(("p25", "median", "p75"), np.percentile(a, [25, 50, 75]))}

    r = float(np.median(ratio))
    return {
        "dataset": name,
        "faces": int(len(idx)),
        "found": len(ratio),
        "side_over_box": q(ratio),
        "centre_dx_over_box": q(dx),
        "centre_dy_over_box": q(dy),
        "margin": round((r - 1) / 2, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--datasets", default="fer2013,ferplus,ckplus")
    ap.add_argument("--n", type=int, default=800, help="training faces per data set")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for name in args.datasets.split(","):
        rows.append(measure(name, args.data_dir, args.n, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "method": __doc__.splitlines()[0],
                    "detector": "facenet-pytorch 2.5.3 MTCNN",
                    "split": "training faces only",
                    "results": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

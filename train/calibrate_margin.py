"""Choose the face-crop margin by measurement: detect, crop and classify JAFFE's uncropped photos with the
FER2013 model at several margins; pick the best on a validation part (JAFFE's paper-protocol train +
validation images, 143), report the held-out 70 test photos beside it. Prints JSON; --out saves it.

    python train/calibrate_margin.py --model fer2013 --data-dir ../shared/data --out train/margin_calibration.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from deep_emotion.faces.detect import Detector, whole_image_face
from deep_emotion.faces.framing import LEGACY_FRAMING, crop_face
from deep_emotion.faces.images import load_image
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.pipeline import Pipeline
from deep_emotion.training.cross_dataset import shared_class_accuracy
from deep_emotion.training.data import FaceDataset, load_dataset, resolve_root

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--margins", default=",".join(map(str, MARGINS)))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    # one pipeline: the network alone, and MTCNN with the framing the margin was chosen with (no whole-picture
    # fallback: a photo without a face is counted as such)
    loaded = load_checkpoint(args.model)
    pipe = Pipeline({loaded.name: loaded}, Detector(framing=replace(LEGACY_FRAMING, margin=0.0), whole_picture=False))
    model, card = loaded
    jaffe = load_dataset("jaffe", args.data_dir, crop_faces=False)  # labels, subjects and file order
    root = resolve_root("jaffe", args.data_dir)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    photos = [load_image(f) for f in files]
    boxes = []
    for im in photos:  # detection once; only the crop changes with the margin
        faces = pipe.find_faces(im)
        boxes.append(faces[0].box if faces else None)
    split = jaffe.split("paper", seed=0)
    selection = np.sort(np.concatenate([split.train, split.val]))
    curve = []
    for m in (float(x) for x in args.margins.split(",")):
        crops = np.stack(
            [
                crop_face(im, b, framing=replace(LEGACY_FRAMING, margin=m)) if b else whole_image_face(im).crop
                for im, b in zip(photos, boxes)
            ]
        )
        ds = FaceDataset("jaffe", crops, jaffe.labels, jaffe.classes, jaffe.groups, jaffe.subjects, jaffe.protocols)
        val = shared_class_accuracy(model, list(card.labels), ds, selection)
        test = shared_class_accuracy(model, list(card.labels), ds, split.test)
        curve.append(
            {
                "margin": m,
                "selection_accuracy": round(val["accuracy"], 4),
                "n_selection": val["n"],
                "test_accuracy": round(test["accuracy"], 4),
                "n_test": test["n"],
            }
        )
        print(json.dumps(curve[-1]), flush=True)
    best = max(curve, key=lambda r: r["selection_accuracy"])
    result = {
        "model": card.name,
        "model_sha256": card.sha256,
        "faces_found": sum(b is not None for b in boxes),
        "photos": len(files),
        "chosen_margin": best["margin"],
        "selection": "JAFFE paper-protocol train+val photos (seed 0); test photos reported only",
        "curve": curve,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

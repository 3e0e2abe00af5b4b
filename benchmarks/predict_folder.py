"""Batch prediction over a folder (`deep-emotion predict DIR --csv`): images/s with detection and
classification batched (chunks of 32) vs one image at a time. Generated photos; prints JSON.

    python benchmarks/predict_folder.py [--images 48]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--model", default="fer2013")
    args = ap.parse_args()
    from PIL import Image

    from deep_emotion.cli import main as cli

    src = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "photos"
        folder.mkdir()
        for i in range(args.images):  # 640x480 photos, the face at varying places and sizes
            canvas = Image.new("RGB", (640, 480), (100 + i % 50, 120, 140))
            side = 260 + (i * 37) % 200
            canvas.paste(src.resize((side, side)), ((i * 53) % (640 - side), (i * 29) % (480 - side)))
            canvas.save(folder / f"{i:03d}.jpg", quality=90)
        timings = {}
        for batch in (1, 32, 1, 32):  # interleaved; the second of each pair is kept (warm)
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                rc = cli(
                    [
                        "predict",
                        str(folder),
                        "--model",
                        args.model,
                        "--csv",
                        str(Path(d) / "out.csv"),
                        "--batch",
                        str(batch),
                    ]
                )
            assert rc == 0
            timings[batch] = time.perf_counter() - t
        rows = (Path(d) / "out.csv").read_text().splitlines()
    print(
        json.dumps(
            {
                "benchmark": "predict_folder",
                "images": args.images,
                "faces_found": len(rows) - 1,
                "batched_images_per_s": round(args.images / timings[32], 2),
                "one_by_one_images_per_s": round(args.images / timings[1], 2),
                "speedup": round(timings[1] / timings[32], 2),
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

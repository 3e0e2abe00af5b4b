"""How long the command line takes: `--help`, `models`, and `predict` on a photo without a face, as whole
processes (start-up included), beside the same photo through the app's path (one pipeline already loaded:
`Pipeline.find_faces` + `predict`, as a web visitor's upload meets it). `--busy N` starts N busy loops first,
so that the figures show a machine shared with other work.

    python benchmarks/cli_speed.py [--repeats 5] [--busy 1] [--repo /tmp/before]

`--repo` times another checkout's command line with this interpreter (e.g. `git worktree add /tmp/before
<commit>`), for before / after figures measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def no_face_photo(folder: Path) -> Path:
    """900x916 px of scikit-image's public-domain coffee cup: a photo with no face."""
    from PIL import Image
    from skimage import data

    path = folder / "no_face.jpg"
    Image.fromarray(data.coffee()).resize((900, 916)).save(path, quality=90)
    return path


def run(repo: Path, args: list[str], repeats: int) -> dict:
    """Median and range of the wall time of `python -m deep_emotion ARGS` run in `repo` (its package first)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "deep_emotion", *args], cwd=repo, env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed in {repo}: {done.stderr[-500:]}")
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def app_path(photo: Path, repeats: int) -> dict:
    """The same photo through one loaded pipeline (what an upload costs the app once it is running)."""
    from deep_emotion import Pipeline, load_image

    pipe = Pipeline.from_names("fer2013")
    image = load_image(photo)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        pipe.predict(pipe.find_faces(image))
        times.append(time.perf_counter() - t)
    times = times[1:]  # the first call builds MTCNN
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def busy_loop() -> None:
    while True:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--busy", type=int, default=0, help="busy loops running beside the measurements")
    p.add_argument("--repo", type=Path, action="append", default=[], help="also time this checkout's CLI")
    args = p.parse_args()
    loops = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.busy)]
    for loop in loops:
        loop.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            photo = no_face_photo(Path(folder))
            out = {
                "cpus": os.cpu_count(),
                "busy_loops": args.busy,
                "repeats": args.repeats,
                "photo": "900x916, no face",
            }
            for repo in [ROOT, *args.repo]:
                label = "this checkout" if repo == ROOT else str(repo)
                out[label] = {
                    "--help": run(repo, ["--help"], args.repeats),
                    "models": run(repo, ["models"], args.repeats),
                    "predict": run(repo, ["predict", str(photo)], args.repeats),
                }
            out["app path (pipeline loaded): find_faces + predict"] = app_path(photo, args.repeats)
    finally:
        for loop in loops:
            loop.terminate()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

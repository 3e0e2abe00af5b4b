"""Training throughput for 1 and N processes (torchrun, gloo on CPU / NCCL on GPUs) with `deep-emotion train`
on a generated data set, same recipe and global batch. Prints JSON: images/s per setting (median of the
epochs after the first).

    python benchmarks/ddp_speed.py [--recipe train/fer2013.toml] [--images 4096] [--epochs 3] [--nprocs 1,2]

On a 2-core CPU, 2 processes of 1 thread compete for the same cores as 1 process of 2 threads: the figure shows
the overhead of the gradient all-reduce, not a speed-up; the speed-up needs more cores or GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from deep_emotion.models.card import read_card  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def make_folder(root: Path, n: int) -> Path:
    """n random 48x48 grey images in 7 class folders (throughput does not depend on what they show)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(d / f"{i:05d}.png")
    return root


def run(recipe: Path, data: Path, work: Path, nproc: int, threads: int, epochs: int) -> dict:
    text = recipe.read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith(("dataset", "protocol", "name", "init_from"))]
    local = work / f"bench-{nproc}x{threads}.toml"
    local.write_text('name = "bench"\ndataset = "folder"\n' + "\n".join(lines) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc > 1
        else [sys.executable]
    )
    run_dir = work / f"run-{nproc}x{threads}"
    subprocess.run(
        [
            *cmd,
            "-m",
            "deep_emotion",
            "train",
            str(local),
            "--data-dir",
            str(data),
            "--epochs",
            str(epochs),
            "--run-dir",
            str(run_dir),
            "--out",
            str(work / "out"),
            "--threads",
            str(threads),
            "--no-progress",
            "--device",
            "cpu",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    seconds = statistics.median(r["seconds"] for r in log[1:])
    return {"processes": nproc, "threads_each": threads, "epoch_s": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "train" / "fer2013.toml")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--nprocs", default="1,2")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_folder(work / "data", args.images)
        n_train = None
        rows = []
        for nproc in (int(x) for x in args.nprocs.split(",")):
            r = run(args.recipe, data, work, nproc, max(1, cores // nproc), args.epochs)
            n_train = n_train or read_card(work / "out" / "bench.safetensors").extra["split_sizes"]["train"]
            r["images_per_s"] = round(n_train / r["epoch_s"], 1)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(
        json.dumps(
            {
                "recipe": str(args.recipe.relative_to(ROOT)) if args.recipe.is_relative_to(ROOT) else str(args.recipe),
                "train_images": n_train,
                "epochs": args.epochs,
                "results": rows,
                "note": "epoch seconds include the validation pass on rank 0",
                "env": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Training throughput: the project's epoch loop (shuffle, batched augmentation, channels-last, the paper's
loss) against bare model steps on pre-made in-memory batches (the limit). Prints JSON.

    python benchmarks/training_speed.py [--images 8192] [--repeats 5] [--recipe train/X.toml] [--precision fp32|bf16]

Both loops use the recipe's precision (bf16 autocast or fp32); `--precision` overrides it, so the wide
recipe's bf16 gain is `--recipe train/fer2013-wide.toml` against the same with `--precision fp32`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from deep_emotion.models.registry import create_model  # noqa: E402
from deep_emotion.training.loop import train_one_epoch  # noqa: E402
from deep_emotion.training.recipe import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--recipe", default=str(ROOT / "train" / "fer2013.toml"))
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="override the recipe's precision")
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    if args.precision:
        recipe = replace(recipe, precision=args.precision)
    torch.manual_seed(0)
    x = torch.rand(args.images, 1, 48, 48)
    y = torch.randint(0, 7, (args.images,))
    bs = recipe.batch_size

    def fresh():
        model = create_model(recipe.architecture, recipe.model, num_classes=7).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    batches = [
        (x[i : i + bs].contiguous(memory_format=torch.channels_last), y[i : i + bs]) for i in range(0, len(y), bs)
    ]

    def bare() -> float:
        model, opt, _ = fresh()
        model.train()
        t = time.perf_counter()
        for xb, yb in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
                logits = model(xb).float()
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return args.images / (time.perf_counter() - t)

    def project() -> float:
        model, opt, sched = fresh()
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        train_one_epoch(model, opt, sched, x, y, recipe, g)
        return args.images / (time.perf_counter() - t)

    bare(), project()  # warm-up
    bare_ips, project_ips = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        bare_ips.append(bare())
        project_ips.append(project())
    b, p = statistics.median(bare_ips), statistics.median(project_ips)
    print(
        json.dumps(
            {
                "benchmark": "training_speed",
                "settings": {
                    "images": args.images,
                    "batch_size": bs,
                    "repeats": args.repeats,
                    "recipe": Path(args.recipe).name,
                    "precision": recipe.precision,
                },
                "bare_images_per_s": round(b, 1),
                "project_images_per_s": round(p, 1),
                "ratio": round(p / b, 3),
                "target_ratio": 0.9,
                "fer2013_epoch_s_estimate": round(28709 / p, 1),
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

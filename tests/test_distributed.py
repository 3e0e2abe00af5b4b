"""Data-parallel training (torchrun, gloo on CPU) against one process at the same global batch and seed.

Run as a module (`python -m tests.test_distributed train ...`), this file is the CLI with `sgd_optimiser` in place
of the loop's Adam: the entry point of the processes that test_two_processes_train_like_one starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from deep_emotion.training import loop as training
from deep_emotion.training.recipe import Recipe, load_recipe

# dropout off: its masks are drawn per process (as in any DDP job); batches and augmentation are shared
RECIPE = """
name = "patterns"
dataset = "folder"
epochs = 2
batch_size = 32
lr = 3e-3
warmup_epochs = 1
label_smoothing = 0.1
class_balance = true
[model]
dropout = 0.0
"""


# The weights after 8 steps, compared with SGD in place of Adam and without the spatial transformer (STN).
# Adam's step m/sqrt(v) is about lr x sign(gradient) where a gradient is near 0, so the float-summation-order
# noise between 1 and 2 processes (32 faces summed vs 2 x 16) became whole steps: 2.7e-3 to 5e-3 on an AVX-512 CPU,
# where AVX2 CPUs had stayed under 2e-4. SGD's update is linear in the gradients: the weights differ by rounding.
# The STN's bilinear sampler has a kink wherever a sample point is on a pixel centre (all are, at its identity
# init); a rounding-sized change of theta can move a point across one and put a whole pixel difference into
# theta's gradient (up to 1.7e-4 in 1 of 16 seeds with SGD). Without the STN: at most 1.4e-6 over 10 seeds on the
# AVX-512 CPU; ATOL is 14x that. The same run with DDP done wrong differs by far more: lr x 1.001 in one run
# 2.5e-4, gradients summed instead of averaged 1.8e-2, both ranks on one shard 3.8e-2, a permutation per rank
# 5.0e-2.
SGD_RECIPE = """
name = "patterns"
dataset = "folder"
epochs = 2
batch_size = 32
lr = 0.1
warmup_epochs = 1
label_smoothing = 0.1
class_balance = true
[model]
dropout = 0.0
stn = false
"""
ATOL = 2e-5
ROOT = Path(__file__).resolve().parents[1]
_adam = training.build_optimiser


def sgd_optimiser(model: torch.nn.Module, recipe: Recipe, steps_per_epoch: int):
    """`build_optimiser` with SGD (momentum 0.9, linear in the gradients) in place of Adam, on the loop's schedule."""
    _, schedule = _adam(model, recipe, steps_per_epoch)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambdas)


def _torchrun(args: list[str], nproc: int = 2, entry: str = "deep_emotion") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            entry,
            "train",
            *args,
            "--no-progress",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_two_processes_train_like_one(pattern_folder, tmp_path, monkeypatch):
    """The same weights after 2 epochs (8 steps) in 1 and 2 processes, to rounding: the same data order and
    augmentation, each rank on its half of every global batch, the gradient averaged over the whole batch.
    SGD and no STN (see SGD_RECIPE); the resume test below runs the real CLI with Adam."""
    recipe_path = tmp_path / "patterns.toml"
    recipe_path.write_text(SGD_RECIPE)
    torch.set_num_threads(1)
    monkeypatch.setattr(training, "build_optimiser", sgd_optimiser)
    one = training.train(
        load_recipe(recipe_path),
        pattern_folder,
        device="cpu",
        run_dir=tmp_path / "one" / "run",
        out_dir=tmp_path / "one" / "out",
        progress=False,
    )
    two = _torchrun(
        [
            str(recipe_path),
            "--data-dir",
            str(pattern_folder),
            "--run-dir",
            str(tmp_path / "two" / "run"),
            "--out",
            str(tmp_path / "two" / "out"),
        ],
        entry="tests.test_distributed",
    )
    assert two.returncode == 0, two.stderr[-3000:]
    # one set of files, written once (rank 0): the same names as one process writes, one log line per epoch
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    assert len((tmp_path / "two" / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert two.stdout.count("epoch 2/2") == 1
    # the same parameters after 2 epochs (8 steps, SGD): only the order of float sums differs
    a = torch.load(tmp_path / "one" / "run" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "run" / "state.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    worst = max((b["model"][k] - a["model"][k]).abs().max().item() for k in a["model"])
    print(f"largest weight difference, 2 processes vs 1: {worst:.3g} (atol {ATOL:g})")
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=ATOL, rtol=0, msg=k)
    moved = max(
        (
            a["model"][k]
            - training.build_model(load_recipe(recipe_path), one.labels, torch.device("cpu")).state_dict()[k]
        )
        .abs()
        .max()
        .item()
        for k in a["model"]
    )
    assert moved > 1e-2  # the weights did change: the comparison is not of two untrained models
    # the logged loss and accuracy are over all processes
    import json

    la = [json.loads(x) for x in (tmp_path / "one" / "run" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "two" / "run" / "log.jsonl").read_text().splitlines()]
    for ra, rb in zip(la, lb):
        assert abs(ra["loss"] - rb["loss"]) < 1e-3 and abs(ra["train_acc_augmented"] - rb["train_acc_augmented"]) < 0.02
        assert ra["val_acc"] == rb["val_acc"]


def test_distributed_run_resumes_a_single_process_run(pattern_folder, tmp_path, monkeypatch):
    """A run cut after epoch 1 in one process, resumed by two: the same weights as one uninterrupted process."""
    recipe_path = tmp_path / "patterns.toml"
    recipe_path.write_text(RECIPE.replace("epochs = 2", "epochs = 3"))
    recipe = load_recipe(recipe_path)
    torch.set_num_threads(1)
    training.train(
        recipe, pattern_folder, device="cpu", run_dir=tmp_path / "full", out_dir=tmp_path / "o1", progress=False
    )

    calls = {"n": 0}
    real_evaluate = training.evaluate

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the validation of epoch 2: the run dies
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupted)
    try:
        training.train(
            recipe, pattern_folder, device="cpu", run_dir=tmp_path / "cut", out_dir=tmp_path / "o2", progress=False
        )
    except KeyboardInterrupt:
        pass
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["epoch"] == 1
    resumed = _torchrun(
        [
            str(recipe_path),
            "--data-dir",
            str(pattern_folder),
            "--run-dir",
            str(tmp_path / "cut"),
            "--out",
            str(tmp_path / "o2"),
            "--resume",
        ]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming patterns at epoch 2/3") == 1
    a = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert b["epoch"] == 3
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-4, rtol=1e-3, msg=k)


if __name__ == "__main__":  # a torchrun process of test_two_processes_train_like_one: the CLI, SGD for Adam
    from deep_emotion.cli import main

    training.build_optimiser = sgd_optimiser
    raise SystemExit(main())

"""Data-parallel training (torchrun, gloo on CPU) against one process at the same global batch and seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from deep_emotion import training
from deep_emotion.recipe import load_recipe

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


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           "-m", "deep_emotion", "train", *args, "--no-progress", "--threads", "1", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_two_processes_train_like_one(pattern_folder, tmp_path):
    recipe_path = tmp_path / "patterns.toml"
    recipe_path.write_text(RECIPE)
    torch.set_num_threads(1)
    one = training.train(load_recipe(recipe_path), pattern_folder, device="cpu", run_dir=tmp_path / "one" / "run",
                         out_dir=tmp_path / "one" / "out", progress=False)
    two = _torchrun([str(recipe_path), "--data-dir", str(pattern_folder), "--run-dir", str(tmp_path / "two" / "run"),
                     "--out", str(tmp_path / "two" / "out")])
    assert two.returncode == 0, two.stderr[-3000:]
    # one set of files, written once (rank 0): the same names as one process writes, one log line per epoch
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    assert len((tmp_path / "two" / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert two.stdout.count("epoch 2/2") == 1
    # the same parameters after 2 epochs (8 steps, Adam): only the order of float sums differs
    a = torch.load(tmp_path / "one" / "run" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "run" / "state.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-4, rtol=1e-3, msg=k)
    moved = max((a["model"][k] - training.build_model(load_recipe(recipe_path), tuple(one["classes"]),
                                                      torch.device("cpu")).state_dict()[k]).abs().max().item()
                for k in a["model"])
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
    training.train(recipe, pattern_folder, device="cpu", run_dir=tmp_path / "full", out_dir=tmp_path / "o1", progress=False)

    calls = {"n": 0}
    real_evaluate = training.evaluate

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the validation of epoch 2: the run dies
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupted)
    try:
        training.train(recipe, pattern_folder, device="cpu", run_dir=tmp_path / "cut", out_dir=tmp_path / "o2", progress=False)
    except KeyboardInterrupt:
        pass
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["epoch"] == 1
    resumed = _torchrun([str(recipe_path), "--data-dir", str(pattern_folder), "--run-dir", str(tmp_path / "cut"),
                         "--out", str(tmp_path / "o2"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming patterns at epoch 2/3") == 1
    a = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert b["epoch"] == 3
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-4, rtol=1e-3, msg=k)

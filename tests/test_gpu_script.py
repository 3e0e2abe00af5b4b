"""train/gpu/run.sh, the one-GPU script for the device machine, run on CPU with one epoch of a tiny recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from deep_emotion.models.registry import create_model
from deep_emotion.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
TINY = """
name = "patterns"
dataset = "folder"
epochs = 3
batch_size = 32
[model]
stages = [8, 16]
fc_hidden = 16
"""


def test_gpu_script_runs_end_to_end_on_cpu(pattern_folder, tmp_path):
    recipe = tmp_path / "patterns.toml"
    recipe.write_text(TINY)
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "DATA": str(pattern_folder),
        "RECIPES": str(recipe),
        "EPOCHS": "1",
        "DEVICE": "cpu",
        "COMPILE": "0",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "train" / "gpu" / "run.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    card = json.loads((tmp_path / "out" / "patterns.json").read_text())
    assert card["epochs"] == 1 and card["metrics"]["test"]["n"] == 18
    assert (tmp_path / "out" / "patterns.safetensors").is_file()
    assert len((tmp_path / "out" / "runs" / "patterns" / "log.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "out" / "environment.json").read_text())["torch"] == torch.__version__


def _weight_layers(model: torch.nn.Module) -> int:
    """Conv and linear layers of the classifier path (the spatial transformer's own are not counted)."""
    return sum(
        isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
        for name, m in model.named_modules()
        if not name.startswith("stn")
    )


def test_gpu_recipes_are_attentional_and_under_ten_layers():
    for path in sorted((ROOT / "train" / "gpu").glob("*.toml")):
        recipe = load_recipe(path)
        model = create_model(recipe.architecture, recipe.model, num_classes=7)
        assert model.config.stn, path.name
        assert _weight_layers(model) < 10, path.name
        assert recipe.dataset == "fer2013" and recipe.protocol == "paper", path.name

"""Training on a generated, learnable data set: it learns, checkpoints round-trip, resume continues."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from deep_emotion.errors import RecipeError
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.inputs import to_tensor
from deep_emotion.models.paper import DeepEmotion, ModelConfig
from deep_emotion.training import loop as training
from deep_emotion.training.data import load_dataset
from deep_emotion.training.recipe import AugmentConfig, Recipe, load_recipe, recipe_from_dict

RECIPE = Recipe(
    name="patterns",
    dataset="folder",
    epochs=6,
    batch_size=32,
    lr=3e-3,
    warmup_epochs=1,
    model=ModelConfig(dropout=0.1),
    augment=AugmentConfig(erase_prob=0.0),
)


def test_training_learns_and_round_trips(pattern_folder, tmp_path):
    card = training.train(RECIPE, pattern_folder, run_dir=tmp_path / "run", out_dir=tmp_path / "ckpt", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    assert card.metrics["test"].accuracy >= 0.8  # chance is 1/3
    assert card.labels == card.classes == ("blob", "horizontal", "vertical")
    assert card.metrics["test"].n == card.extra["split_sizes"]["test"] == 18
    assert (tmp_path / "ckpt" / "patterns_confusion.png").stat().st_size > 1000
    # round trip: the loaded checkpoint gives exactly the outputs of the best-on-validation weights
    model, loaded_card = load_checkpoint(tmp_path / "ckpt" / "patterns.safetensors")
    assert loaded_card.name == "patterns" and loaded_card == card and not model.training
    ref = DeepEmotion(model.config)
    ref.load_state_dict(load_file(str(tmp_path / "run" / "best.safetensors")))
    ref.eval()
    x = to_tensor(load_dataset("folder", pattern_folder).images[:10])
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-6, rtol=1e-5)  # identical weights; layouts may differ


def test_resume_continues_where_it_stopped(pattern_folder, tmp_path, monkeypatch):
    recipe = replace(RECIPE, epochs=4)
    training.train(recipe, pattern_folder, run_dir=tmp_path / "full", out_dir=tmp_path / "o1", progress=False)

    calls = {"n": 0}
    real_evaluate = training.evaluate

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the validation of epoch 3: the run dies mid-training
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, pattern_folder, run_dir=tmp_path / "cut", out_dir=tmp_path / "o2", progress=False)
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    assert len((tmp_path / "cut" / "log.jsonl").read_text().splitlines()) == 2
    training.train(
        recipe, pattern_folder, run_dir=tmp_path / "cut", out_dir=tmp_path / "o2", resume=True, progress=False
    )

    full = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    cut = [json.loads(x) for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in cut] == [1, 2, 3, 4]
    for a, b in zip(full, cut):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["val_acc"] == b["val_acc"]
    wa = load_file(str(tmp_path / "o1" / "patterns.safetensors"))
    wb = load_file(str(tmp_path / "o2" / "patterns.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_resume_refuses_other_recipe(pattern_folder, tmp_path):
    recipe = replace(RECIPE, epochs=1)
    training.train(recipe, pattern_folder, run_dir=tmp_path / "r", out_dir=tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="different recipe"):
        training.train(
            replace(recipe, lr=1e-2),
            pattern_folder,
            run_dir=tmp_path / "r",
            out_dir=tmp_path / "o",
            resume=True,
            progress=False,
        )


def test_recipe_rejects_unknown_keys():
    with pytest.raises(RecipeError, match="unknown key"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "epoch": 3})
    with pytest.raises(RecipeError, match=r"\[model\].*unknown"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "model": {"layers": 3}})
    with pytest.raises(RecipeError, match="schedule"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "schedule": "linear"})
    with pytest.raises(RecipeError, match="precision"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "precision": "fp8"})
    with pytest.raises(RecipeError, match="stages"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "model": {"stages": [16, -1]}})


def test_wide_bf16_recipe_learns_and_round_trips(pattern_folder, tmp_path):
    """Issue 8's wider extractor trained with bf16 autocast: it learns, and its stages survive the JSON card.
    12 epochs, not 6: BatchNorm's running statistics need more than 24 steps to settle."""
    recipe = replace(
        RECIPE, name="wide", precision="bf16", epochs=12, model=ModelConfig(stages=(8, 16), fc_hidden=32, dropout=0.1)
    )
    card = training.train(recipe, pattern_folder, run_dir=tmp_path / "run", out_dir=tmp_path / "ckpt", progress=False)
    assert card.metrics["test"].accuracy >= 0.8  # chance is 1/3
    model, _ = load_checkpoint(tmp_path / "ckpt" / "wide.safetensors")
    assert model.config.stages == (8, 16) and model.fc1.in_features == 16 * 12 * 12


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted(Path(__file__).parent.parent.glob("train/*.toml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_device_resolution():
    assert training.resolve_device("cpu").type == "cpu"
    assert training.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError):
        training.resolve_device("tpu")


def test_bf16_on_a_cpu_without_native_bf16_is_announced(capsys, monkeypatch):
    import torch

    from deep_emotion.training.loop import warn_slow_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    warn_slow_bf16("bf16", torch.device("cpu"))
    assert "no native bf16" in capsys.readouterr().err
    warn_slow_bf16("fp32", torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    warn_slow_bf16("bf16", torch.device("cpu"))
    assert capsys.readouterr().err == ""

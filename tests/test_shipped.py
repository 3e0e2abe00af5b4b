"""The bundled checkpoints: they load, their cards are complete, and (with the data) `evaluate` reproduces them."""

from __future__ import annotations

import json

import pytest

from deep_emotion.classes import CANONICAL
from deep_emotion.cli import main
from deep_emotion.faces.framing import FACE_CROP, Framing
from deep_emotion.models.card import list_checkpoints
from deep_emotion.models.checkpoints import load_checkpoint

SHIPPED = list_checkpoints()
FLOORS = {"fer2013": 0.56, "ferplus-wide": 0.80, "jaffe-wide": 0.928}  # issue floors met by the shipped models


def test_fer2013_is_shipped():
    assert "fer2013" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete(name):
    model, card = load_checkpoint(name)
    for key in (
        "dataset",
        "protocol",
        "classes",
        "input",
        "face_crop",
        "recipe",
        "seed",
        "metrics",
        "per_class_recall",
        "confusion",
        "epochs",
        "training_time_s",
        "sha256",
        "licence",
        "paper",
    ):
        assert key in card.to_dict(), key
    assert card.name == name and model.config.num_classes == len(card.labels) == len(card.classes)
    assert set(card.classes) <= set(CANONICAL)  # every shipped model's classes are emotions
    assert len(card.confusion) == len(card.labels) and {"val", "test"} <= set(card.metrics)
    assert card.metrics["test"].protocol == card.protocol
    # the framing of uploads; JAFFE's photos are cropped with it too (its models were retrained when it changed)
    assert card.face_crop == FACE_CROP
    assert Framing.from_card(card.face_crop).card() == card.face_crop


@pytest.mark.parametrize("name", SHIPPED)
def test_evaluate_reproduces_card(name, data_root, capsys):
    _, card = load_checkpoint(name)
    assert main(["evaluate", "--model", name, "--data-dir", str(data_root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == card.metrics["test"].n
    assert out["accuracy"] == pytest.approx(card.metrics["test"].accuracy, abs=1e-3)
    assert out["accuracy"] >= FLOORS.get(name, 0.0)


@pytest.mark.parametrize("name", SHIPPED)
def test_card_recipe_is_the_shipped_recipe(name):
    """Each card was trained by the recipe in train/ (one command reproduces it)."""
    from pathlib import Path

    from deep_emotion.training.recipe import load_recipe, recipe_from_dict

    _, card = load_checkpoint(name)
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "train" / f"{name}.toml")
    assert recipe_from_dict(card.extra["recipe"]) == recipe

"""Checkpoints: round trip without pickle; every damaged file is refused with an error naming it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from deep_emotion.errors import CheckpointError
from deep_emotion.models.checkpoints import load_checkpoint, save_checkpoint
from deep_emotion.models.paper import DeepEmotion, ModelConfig

CARD = {"name": "tiny", "dataset": "folder", "classes": ["a", "b", "c"], "protocol": "random"}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig(num_classes=3)).eval()
    save_checkpoint(model, CARD, tmp_path / "tiny")
    return model, tmp_path / "tiny.safetensors"


def test_round_trip(saved):
    model, path = saved
    loaded, card = load_checkpoint(path)
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), atol=1e-6, rtol=1e-5)  # loaded: channels-last layout
    assert card.model_config["num_classes"] == 3 and len(card.sha256) == 64
    assert card.name == "tiny" and card.labels == card.classes == ("a", "b", "c")  # not emotions: kept as labelled
    assert card.to_dict() == json.loads(path.with_suffix(".json").read_text())  # the JSON as written
    assert load_checkpoint(path.with_suffix(".json")).card.name == "tiny"  # the card's path works too


def test_truncated_weights(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    card = json.loads(path.with_suffix(".json").read_text())
    card.pop("sha256")  # even without the checksum, the file itself is refused
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="tiny.safetensors: not a readable safetensors"):
        load_checkpoint(path)


def test_corrupted_weights_fail_the_checksum(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="tiny.safetensors: sha256 differs"):
        load_checkpoint(path)


def test_wrong_shapes(saved, tmp_path):
    _, path = saved
    wide = DeepEmotion(ModelConfig(num_classes=3, channels=12))
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(path))
    card = json.loads(path.with_suffix(".json").read_text())
    card.pop("sha256")
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights do not match the card's architecture"):
        load_checkpoint(path)


def test_card_class_count_mismatch(saved):
    _, path = saved
    card = json.loads(path.with_suffix(".json").read_text())
    card["classes"] = ["a", "b"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="2 classes, model has 3"):
        load_checkpoint(path)


def test_missing_or_broken_card(saved):
    _, path = saved
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tiny.json: not a readable JSON"):
        load_checkpoint(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="model card tiny.json is missing"):
        load_checkpoint(path)


def test_pickle_files_are_never_unpickled(tmp_path):
    evil = tmp_path / "model.pt"
    torch.save({"x": torch.zeros(1)}, evil)
    with pytest.raises(CheckpointError, match="pickle-based weight files are not loaded"):
        load_checkpoint(evil)


def test_unknown_name_lists_bundled():
    with pytest.raises(CheckpointError, match="unknown model 'nope'; bundled models:"):
        load_checkpoint("nope")


def _card(dataset: str = "folder", **config):
    from deep_emotion.models.card import ModelCard

    return ModelCard.from_dict(
        {
            "name": dataset,
            "dataset": dataset,
            "classes": ["a", "b", "c"],
            "model_config": ModelConfig(**config).to_dict(),
        }
    )


def test_architecture_names_the_network():
    from deep_emotion.models.card import architecture

    assert architecture(_card()) == "paper" == _card().description
    assert architecture(_card(stages=(32, 64, 128))) == "wide 32-64-128"
    assert architecture(_card(batch_norm=True, channels=16)) == "paper + batch_norm, 16 filters"


def test_default_models_are_the_paper_ones_trained_on_photos_from_the_wild():
    from deep_emotion.models.card import default_models, model_order

    card = _card
    cards = {
        "jaffe": card("jaffe"),
        "fer2013": card("fer2013"),
        "fer2013-wide": card("fer2013", stages=(8,)),
        "ckplus": card("ckplus"),
        "ferplus": card("ferplus"),
    }
    assert default_models(cards) == ["fer2013", "ferplus"]  # posed sets and -wide models one click away
    assert model_order(cards) == ["fer2013", "fer2013-wide", "ferplus", "ckplus", "jaffe"]
    assert default_models({"jaffe": card("jaffe"), "x-wide": card("fer2013", stages=(8,))}) == ["jaffe"]
    assert default_models({"x-wide": card("fer2013", stages=(8,))}) == ["x-wide"]  # nothing else to show

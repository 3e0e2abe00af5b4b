"""Model families as plugins: the registry, cards naming their architecture, the model interface, fine-tuning."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from deep_emotion.errors import CheckpointError, RecipeError
from deep_emotion.models.checkpoints import load_checkpoint, save_checkpoint
from deep_emotion.models.paper import DeepEmotion, ModelConfig
from deep_emotion.models.registry import EmotionModel, architecture_name, create_model, list_models, register_model
from deep_emotion.models.resnet import ResNetConfig, ResNetSmall
from deep_emotion.training import loop as training
from deep_emotion.training.recipe import AugmentConfig, Recipe, load_recipe, recipe_from_dict

CARD = {"name": "tiny", "dataset": "folder", "classes": ["a", "b", "c"], "protocol": "random"}
SMALL_RESNET = {"num_classes": 3, "stem": 8, "widths": [8, 16], "strides": [1, 2]}


def _randomize(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and scales and a large classifier, so a round trip that lost any would show."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1, generator=g)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_registry_lists_both_families():
    assert {"DeepEmotion", "ResNetSmall"} <= set(list_models())
    assert isinstance(create_model("DeepEmotion"), DeepEmotion)
    model = create_model("ResNetSmall", SMALL_RESNET)
    assert isinstance(model, ResNetSmall) and model.config.widths == (8, 16)
    assert isinstance(model, EmotionModel) and isinstance(create_model(), EmotionModel)
    assert architecture_name(model) == "ResNetSmall" and architecture_name(DeepEmotion()) == "DeepEmotion"


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown architecture 'VGG'.*DeepEmotion.*ResNetSmall"):
        create_model("VGG")
    with pytest.raises(RecipeError, match=r"unknown architecture 'VGG'.*ResNetSmall"):
        recipe_from_dict({"name": "x", "dataset": "fer2013", "architecture": "VGG"})
    with pytest.raises(RecipeError, match=r"\[model\].*unknown.*stages"):  # DeepEmotion's key, ResNet's table
        recipe_from_dict({"name": "x", "dataset": "fer2013", "architecture": "ResNetSmall", "model": {"stages": [8]}})
    with pytest.raises(RecipeError, match="takes a ResNetConfig"):
        Recipe(name="x", dataset="fer2013", architecture="ResNetSmall", model=ModelConfig())


def test_factory_registration(tmp_path):
    """A plain factory (dict -> nn.Module) registers too; its checkpoints name it and load through it."""
    from deep_emotion.models import registry as architectures

    @register_model("TestTinyResNet")
    def tiny(config: dict) -> torch.nn.Module:
        return ResNetSmall(ResNetConfig.from_dict({**SMALL_RESNET, **config}))

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_model("TestTinyResNet")(tiny)
        model = create_model("TestTinyResNet", {"num_classes": 3}).eval()
        assert architecture_name(model) == "TestTinyResNet"
        save_checkpoint(model, CARD, tmp_path / "tiny")
        assert json.loads((tmp_path / "tiny.json").read_text())["architecture"] == "TestTinyResNet"
        loaded, _ = load_checkpoint(tmp_path / "tiny.safetensors")
        assert architecture_name(loaded) == "TestTinyResNet"
    finally:
        architectures._REGISTRY.pop("TestTinyResNet")


def test_card_with_unknown_architecture_is_refused(tmp_path):
    save_checkpoint(DeepEmotion(ModelConfig(num_classes=3)), CARD, tmp_path / "tiny")
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "architecture": "VisionTransformer"}))
    with pytest.raises(CheckpointError, match=r"tiny.json: unknown architecture 'VisionTransformer'.*DeepEmotion"):
        load_checkpoint(tmp_path / "tiny.safetensors")


def test_card_without_architecture_is_deep_emotion(tmp_path):
    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig(num_classes=3)).eval()
    save_checkpoint(model, CARD, tmp_path / "tiny")
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    assert card["architecture"] == "DeepEmotion"
    del card["architecture"]
    card_path.write_text(json.dumps(card))
    loaded, _ = load_checkpoint(tmp_path / "tiny.safetensors")
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-6, rtol=1e-5)


def test_resnet_round_trip_and_no_stn(tmp_path):
    torch.manual_seed(0)
    model = create_model("ResNetSmall", SMALL_RESNET)
    _randomize(model)
    model.eval()
    save_checkpoint(model, CARD, tmp_path / "tiny")
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["architecture"] == "ResNetSmall" and card["model_config"]["widths"] == [8, 16]
    loaded, card = load_checkpoint(tmp_path / "tiny.safetensors")
    assert isinstance(loaded, ResNetSmall) and loaded.config == model.config and not loaded.training
    assert card.architecture == "ResNetSmall" and card.model_config["widths"] == [8, 16]
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-6, rtol=1e-5)  # loaded: channels-last layout
        assert (model(x) - model(x).mean(0)).abs().max() > 0.01  # the comparison compares something
    assert loaded.stn_view(x) is None
    from deep_emotion.models.card import architecture

    assert architecture(card) == "ResNetSmall"


def test_resnet_bad_config_is_refused(tmp_path):
    save_checkpoint(create_model("ResNetSmall", SMALL_RESNET), CARD, tmp_path / "tiny")
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "model_config": {**card["model_config"], "channels": 10}}))
    with pytest.raises(CheckpointError, match="tiny.json: bad model_config"):
        load_checkpoint(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="strides"):
        ResNetConfig(widths=(8, 16), strides=(1,))


def test_shipped_checkpoint_loads_through_the_registry():
    model, card = load_checkpoint("fer2013")
    assert card.architecture == "DeepEmotion" and isinstance(model, DeepEmotion)
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model.network(x), model.head(model.forward_features(x)))
    warped, theta = model.stn_view(x)
    assert warped.shape == x.shape and theta.shape == (3, 2, 3)


@pytest.mark.parametrize(
    "name,config",
    [("DeepEmotion", {}), ("DeepEmotion", {"stages": [8], "fc_hidden": 16}), ("ResNetSmall", SMALL_RESNET)],
)
def test_reset_classifier_changes_the_output_width(name, config):
    model = create_model(name, config, num_classes=7).eval()
    features = model.features.state_dict()
    model.reset_classifier(3)
    assert model.config.num_classes == 3 and model.classifier.out_features == 3
    assert all(torch.equal(v, model.features.state_dict()[k]) for k, v in features.items())
    with torch.no_grad():
        assert model(torch.rand(2, 1, 48, 48)).shape == (2, 3)
    assert create_model(name, model.config).state_dict().keys() == model.state_dict().keys()


def test_stn_view_is_none_without_stn():
    model = DeepEmotion(ModelConfig(stn=False)).eval()
    assert model.stn_view(torch.rand(1, 1, 48, 48)) is None


def test_transfer_weights_matches_rows_by_class_name(tmp_path):
    torch.manual_seed(0)
    source = DeepEmotion(ModelConfig(num_classes=3))
    with torch.no_grad():
        source.classifier.weight.normal_(0, 1)
        source.classifier.bias.normal_(0, 1)
    save_checkpoint(source, {**CARD, "classes": ["happy", "sad", "neutral"]}, tmp_path / "src")
    torch.manual_seed(1)
    model = DeepEmotion(ModelConfig(num_classes=4))
    before = model.classifier.weight.detach().clone()
    training.transfer_weights(model, ("Neutral", "anger", "happy", "Sadness"), str(tmp_path / "src.safetensors"))
    w, b = model.classifier.weight, model.classifier.bias
    for i, j in ((0, 2), (2, 0), (3, 1)):  # canonical names: Sadness is sad, Neutral is neutral
        assert torch.equal(w[i], source.classifier.weight[j]) and torch.equal(b[i], source.classifier.bias[j])
    assert torch.equal(w[1], before[1])  # anger: unknown to the source, keeps its init
    assert torch.equal(model.fc1.weight, source.fc1.weight) and torch.equal(
        model.stn.features[0].weight, source.stn.features[0].weight
    )


def test_transfer_weights_resets_a_classifier_of_another_width(tmp_path):
    source = DeepEmotion(ModelConfig(num_classes=3))
    save_checkpoint(source, {**CARD, "classes": ["happy", "sad", "neutral"]}, tmp_path / "src")
    model = DeepEmotion(ModelConfig())  # 7 classes
    training.transfer_weights(model, ("sad", "fear"), str(tmp_path / "src.safetensors"))
    assert model.config.num_classes == 2 and model.classifier.weight.shape == (2, 50)
    assert torch.equal(model.classifier.weight[0], source.classifier.weight[1])


def test_transfer_weights_refuses_another_family(tmp_path):
    save_checkpoint(create_model("ResNetSmall", SMALL_RESNET), CARD, tmp_path / "src")
    with pytest.raises(ValueError, match="architecture differs"):
        training.transfer_weights(
            DeepEmotion(ModelConfig(num_classes=3)), ("a", "b", "c"), str(tmp_path / "src.safetensors")
        )


def test_transfer_weights_between_resnets(tmp_path):
    source = create_model("ResNetSmall", SMALL_RESNET)
    _randomize(source)
    save_checkpoint(source, {**CARD, "classes": ["angry", "fear", "happy"]}, tmp_path / "src")
    model = create_model("ResNetSmall", SMALL_RESNET, num_classes=2)
    training.transfer_weights(model, ("happiness", "contempt"), str(tmp_path / "src.safetensors"))
    assert torch.equal(model.classifier.weight[0], source.classifier.weight[2])
    assert all(torch.equal(v, source.features.state_dict()[k]) for k, v in model.features.state_dict().items())


def test_resnet_recipe_loads_and_trains(pattern_folder, tmp_path):
    """The shipped ResNet recipe parses; one epoch of it (shrunk) runs through the training loop and round-trips."""
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "train" / "ablations" / "fer2013-resnet.toml")
    assert recipe.architecture == "ResNetSmall" and isinstance(recipe.model, ResNetConfig)
    assert recipe_from_dict(recipe.to_dict()) == recipe
    small = replace(
        recipe,
        name="resnet",
        dataset="folder",
        protocol="",
        epochs=1,
        batch_size=32,
        warmup_epochs=1,
        precision="fp32",
        fc_l2=1e-3,
        model=replace(recipe.model, stem=8, widths=(8, 16), strides=(2, 2)),
        augment=AugmentConfig(erase_prob=0.0),
    )
    card = training.train(small, pattern_folder, run_dir=tmp_path / "run", out_dir=tmp_path / "ckpt", progress=False)
    assert card.architecture == "ResNetSmall" and card.extra["recipe"]["architecture"] == "ResNetSmall"
    assert card.labels == card.classes == ("blob", "horizontal", "vertical")
    model, _ = load_checkpoint(tmp_path / "ckpt" / "resnet.safetensors")
    assert (
        isinstance(model, ResNetSmall)
        and model.config.num_classes == 3
        and model.stn_view(torch.rand(1, 1, 48, 48)) is None
    )


def test_resume_accepts_a_state_written_before_the_architecture_field(pattern_folder, tmp_path):
    recipe = Recipe(
        name="patterns",
        dataset="folder",
        epochs=2,
        batch_size=64,
        warmup_epochs=1,
        model=ModelConfig(dropout=0.1),
        augment=AugmentConfig(erase_prob=0.0),
    )
    training.train(
        replace(recipe, epochs=1), pattern_folder, run_dir=tmp_path / "run", out_dir=tmp_path / "o", progress=False
    )
    state_path = tmp_path / "run" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    state["recipe"] = {k: v for k, v in recipe.to_dict().items() if k != "architecture"}  # as older code wrote it
    torch.save(state, state_path)
    training.train(
        recipe, pattern_folder, run_dir=tmp_path / "run", out_dir=tmp_path / "o", resume=True, progress=False
    )
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2

import pytest
import torch

from deep_emotion.models.paper import DeepEmotion, ModelConfig


@pytest.mark.parametrize(
    "config",
    [ModelConfig(), ModelConfig(num_classes=8, batch_norm=True), ModelConfig(stn=False, channels=16, fc_hidden=64)],
)
def test_output_shape(config):
    model = DeepEmotion(config)
    x = torch.rand(5, 1, 48, 48)
    assert model(x).shape == (5, config.num_classes)
    if not config.stn:
        assert model.stn_view(x) is None  # no spatial transformer, nothing to show
        return
    warped, theta = model.stn_view(x)
    assert warped.shape == x.shape and theta.shape == (5, 2, 3)


def test_paper_layers():
    model = DeepEmotion(ModelConfig())
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 10, (3, 3))] + [(10, 10, (3, 3))] * 3
    loc = [m for m in model.stn.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in loc] == [(8, (7, 7)), (10, (5, 5))]
    assert model.stn.regressor[0].out_features == 32 and model.stn.regressor[-1].out_features == 6
    assert model.fc1.in_features == 10 * 9 * 9  # computed from the input size, not typed in
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_gaussian_init():
    w = DeepEmotion(ModelConfig()).fc1.weight
    assert abs(w.std().item() - 0.05) < 0.005 and abs(w.mean().item()) < 0.005


def test_stn_is_identity_at_init():
    model = DeepEmotion(ModelConfig()).eval()
    x = torch.rand(4, 1, 48, 48)
    warped, theta = model.stn_view(x)
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3))
    assert torch.allclose(warped, x, atol=1e-5)


def test_stn_warps_after_change():
    model = DeepEmotion(ModelConfig()).eval()
    with torch.no_grad():
        model.stn.regressor[-1].bias.copy_(torch.tensor([0.5, 0, 0, 0, 0.5, 0]))  # zoom in 2x
    x = torch.rand(2, 1, 48, 48)
    warped, theta = model.stn_view(x)
    assert torch.allclose(theta[:, 0, 0], torch.tensor(0.5))
    assert not torch.allclose(warped, x, atol=1e-2)


def test_dropout_off_in_eval_on_in_train():
    model = DeepEmotion(ModelConfig(dropout=0.5))
    x = torch.rand(8, 1, 48, 48)
    with torch.no_grad():
        model.fc1.weight.normal_(std=0.5)  # make dropout's effect visible
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_fc_penalty_is_sum_of_squares():
    model = DeepEmotion(ModelConfig())
    expected = (model.fc1.weight**2).sum() + (model.fc2.weight**2).sum()
    assert torch.allclose(model.fc_weight_penalty(), expected)


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown model config"):
        ModelConfig.from_dict({"num_classes": 7, "widht": 3})


def test_wide_stages_layers():
    model = DeepEmotion(ModelConfig(stages=[16, 32, 64], fc_hidden=128))  # a list, as TOML gives it
    assert model.config.stages == (16, 32, 64)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.padding) for c in convs] == [
        (1, 16, (1, 1)),
        (16, 16, (1, 1)),
        (16, 32, (1, 1)),
        (32, 32, (1, 1)),
        (32, 64, (1, 1)),
        (64, 64, (1, 1)),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.features) == 6
    assert model.fc1.in_features == 64 * 6 * 6  # 48 -> 24 -> 12 -> 6
    weight_layers = len(convs) + 2  # + fc1, fc2; the STN in front keeps its paper layers
    assert weight_layers < 10 and model.stn is not None
    assert model(torch.rand(3, 1, 48, 48)).shape == (3, 7)


def test_bad_stages_rejected():
    with pytest.raises(ValueError, match="stages"):
        ModelConfig(stages=(16, 0))


@pytest.mark.parametrize("size", [(48, 48), (7, 13)])
def test_affine_grid_equals_torch(size):
    from deep_emotion.models.paper import affine_grid

    theta = torch.randn(6, 2, 3)
    expected = torch.nn.functional.affine_grid(theta, [6, 1, *size], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, *size), expected, atol=1e-6, rtol=1e-5)

"""The eval-mode re-expressions (fold.py) and the incremental occlusion pass (incremental.py) compute the same
function as the layers listed in model.py."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deep_emotion import explain
from deep_emotion.explain import incremental
from deep_emotion.models.fold import compose_convs, conv_pool, graph_form, phase_kernel, poolable
from deep_emotion.models.paper import DeepEmotion, ModelConfig


def _random_model(config: ModelConfig = ModelConfig(), seed: int = 0) -> DeepEmotion:
    torch.manual_seed(seed)
    model = DeepEmotion(config)
    if model.stn is None:
        return model.eval()
    with torch.no_grad():  # a non-identity, input-dependent STN, so θ differs between occluded copies
        model.stn.regressor[-1].weight.normal_(0, 0.02)
        model.stn.regressor[-1].bias.add_(torch.tensor([-0.1, 0.05, 0.02, -0.03, -0.1, 0.04]))
    return model.eval()


@pytest.mark.parametrize("k1,k2,c", [(3, 3, 1), (3, 5, 2), (2, 3, 3)])
def test_compose_convs_is_the_two_convs(k1, k2, c):
    torch.manual_seed(k1 + k2 + c)
    first, second = nn.Conv2d(c, 6, k1), nn.Conv2d(6, 4, k2)
    x = torch.randn(3, c, 17, 17)
    weight, bias = compose_convs(first, second)
    assert weight.shape == (4, c, k1 + k2 - 1, k1 + k2 - 1)
    torch.testing.assert_close(F.conv2d(x, weight, bias), second(first(x)), atol=1e-5, rtol=1e-5)


def test_compose_convs_rejects_padding():
    with pytest.raises(ValueError, match="stride-1, unpadded"):
        compose_convs(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3))


@pytest.mark.parametrize("k,c,size", [(3, 1, 24), (5, 1, 48), (7, 1, 48), (3, 3, 26), (5, 2, 30)])
def test_conv_pool_is_conv_then_max_pool(k, c, size):
    torch.manual_seed(k * 10 + c)
    conv = nn.Conv2d(c, 5, k)
    x = torch.randn(4, c, size, size)
    assert poolable(size, k)
    kernel, bias = phase_kernel(conv.weight, conv.bias)
    torch.testing.assert_close(conv_pool(x, kernel, bias), F.max_pool2d(conv(x), 2), atol=1e-5, rtol=1e-5)


def test_poolable():
    assert poolable(48, 7) and poolable(48, 5) and poolable(48, 3) and not poolable(48, 4) and not poolable(47, 6)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(num_classes=8, channels=12, fc_hidden=20),
        ModelConfig(stages=(8, 16)),
        ModelConfig(batch_norm=True),
    ],
)
def test_eval_forward_equals_the_listed_layers(config):
    model = _random_model(config)
    reference = copy.deepcopy(model).set_fold(False)
    assert model.fold == (not config.stages and not config.batch_norm) and model.stn.fold
    assert not reference.fold and not reference.stn.fold
    for batch in (1, 7):
        x = torch.rand(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(model.stn_view(x)[1], reference.stn_view(x)[1], atol=1e-6, rtol=1e-5)


def test_odd_input_sizes_fall_back_to_the_listed_layers():
    model = _random_model(ModelConfig(input_size=45))
    reference = copy.deepcopy(model).set_fold(False)
    x = torch.rand(2, 1, 45, 45)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-6, rtol=1e-6)


def test_gradients_flow_to_the_real_parameters():
    model = _random_model()
    reference = copy.deepcopy(model).set_fold(False)
    x = torch.rand(3, 1, 48, 48)
    model(x).logsumexp(1).sum().backward()
    reference(x).logsumexp(1).sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_cached_folds_follow_weight_changes():
    model = _random_model()
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        before = model(x)
        model.features[1].weight.mul_(1.5)  # in place, as an optimiser step or load_state_dict would
        model.stn.features[0].bias.add_(0.3)
        after = model(x)
        reference = copy.deepcopy(model).set_fold(False)(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, atol=1e-5, rtol=1e-5)
    other = _random_model(seed=1)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("config", [ModelConfig(), ModelConfig(stages=(8, 16))])
@pytest.mark.parametrize("window,stride", [(1, 1), (4, 2), (5, 3), (8, 2), (7, 5), (12, 6)])
def test_incremental_pass_equals_the_full_network(config, window, stride):
    model = _random_model(config, seed=window)
    assert incremental.applies(model, 48, window)
    x = torch.rand(1, 1, 48, 48)
    p0, p, masks = explain.occluded_probabilities(model, x, window, stride, baseline=0.2, batch_size=50)
    reference = copy.deepcopy(model).set_fold(False)
    with torch.no_grad():
        copies = torch.where(masks.unsqueeze(1), torch.tensor(0.2), x)
        expected = reference(copies).softmax(1)
        torch.testing.assert_close(p, expected, atol=2e-6, rtol=1e-5)
        torch.testing.assert_close(p0, reference(x).softmax(1)[0], atol=2e-6, rtol=1e-5)


def test_incremental_pass_applies_only_where_it_is_exact_and_pays():
    model = _random_model()
    assert incremental.applies(model, 48, 12) and not incremental.applies(model, 48, 16)  # patch 12 of 21: no gain
    assert not incremental.applies(copy.deepcopy(model).set_fold(False), 48, 8)
    assert not incremental.applies(copy.deepcopy(model).train(), 48, 8)
    assert not incremental.applies(lambda t: model(t), 48, 8)  # a plain callable: the full passes
    assert not incremental.applies(_random_model(ModelConfig(stn=False)), 48, 8)


@pytest.mark.parametrize("config", [ModelConfig(), ModelConfig(num_classes=8, channels=12), ModelConfig(stn=False)])
def test_graph_form_is_the_same_function(config):
    model = _random_model(config)
    reference = copy.deepcopy(model).set_fold(False)
    graph = graph_form(copy.deepcopy(model))
    assert isinstance(graph.features[0], nn.Conv2d) and graph.features[0].kernel_size == (5, 5)
    kinds = [type(m) for m in graph.features]
    assert kinds.index(nn.ReLU) < kinds.index(nn.MaxPool2d)  # each ReLU ahead of its pool
    x = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), reference(x), atol=1e-5, rtol=1e-5)
        if config.stn:
            torch.testing.assert_close(graph.stn_view(x)[0], reference.stn_view(x)[0], atol=1e-6, rtol=1e-5)


def test_graph_form_keeps_other_feature_extractors():
    for config in (ModelConfig(stages=(8, 16)), ModelConfig(batch_norm=True)):
        model = _random_model(config)
        reference = copy.deepcopy(model).set_fold(False)
        before = [type(m) for m in model.features]
        assert [type(m) for m in graph_form(model).features] == before
        x = torch.rand(3, 1, 48, 48)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)

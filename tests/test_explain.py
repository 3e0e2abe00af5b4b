"""Explanations: the batched paper map equals the per-window procedure, Captum's semantics, validation, faithfulness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deep_emotion import explain
from deep_emotion.models.card import list_checkpoints
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.paper import DeepEmotion, ModelConfig

PAIRS = [(4, 2), (8, 2), (8, 4), (12, 6), (5, 3), (48, 1), (1, 7)]


@pytest.fixture(scope="module")
def shipped():
    if "fer2013" in list_checkpoints():
        return load_checkpoint("fer2013")[0]
    pytest.fail("checkpoints/fer2013.safetensors is missing")


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    from .conftest import pattern_face

    return torch.from_numpy(pattern_face(2, np.random.default_rng(3)) / 255.0).float()[None, None]


@pytest.mark.parametrize("window,stride", PAIRS)
@pytest.mark.parametrize("mode", ["flip", "drop"])
def test_batched_map_equals_per_window_loop(shipped, face, window, stride, mode):
    batched = explain.occlusion_map(shipped, face, window, stride, mode, batch_size=37)
    loop = explain.occlusion_map_loop(shipped, face, window, stride, mode)
    assert batched.shape == (48, 48)
    torch.testing.assert_close(batched, loop, atol=1e-6, rtol=1e-5)


def test_flip_map_counts_label_changes(shipped, face):
    # windows of the whole face: one window, and occluding everything makes a black image
    full = explain.occlusion_map(shipped, face, 48, 1, "flip")
    black_pred = int(shipped(torch.zeros(1, 1, 48, 48)).argmax())
    expected = float(black_pred != int(shipped(face).argmax()))
    assert torch.all(full == expected)


class OnePatch(nn.Module):
    """Two classes; logit 0 = 4 * (mean of the 6x6 patch at rows 10-15, cols 20-25), logit 1 = 1."""

    def forward(self, x):
        z = 4 * x[:, 0, 10:16, 20:26].mean(dim=(1, 2))
        return torch.stack([z, torch.ones_like(z)], 1)


def hand_occlusion(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Captum's Occlusion on softmax, by hand: mean over covering windows (clipped at the edge) of p0(x) -
    p0(occluded)."""

    def p0(img):
        z = 4 * img[10:16, 20:26].mean()
        return np.exp(z) / (np.exp(z) + np.e)

    total, count = np.zeros((48, 48)), np.zeros((48, 48))
    starts = range(0, int(np.ceil((48 - window) / stride)) * stride + 1, stride)
    for top in starts:
        for left in starts:
            occ = x.copy()
            occ[top : top + window, left : left + window] = 0
            total[top : top + window, left : left + window] += p0(x) - p0(occ)
            count[top : top + window, left : left + window] += 1
    return total / count


@pytest.mark.parametrize("window,stride", [(4, 2), (5, 3), (8, 4)])
def test_captum_wrapper_semantics(window, stride):
    x = torch.full((1, 1, 48, 48), 0.9)
    model = OnePatch()
    ours = explain.captum_occlusion(model, x, window, stride)  # target: predicted class (0: 3.6 > 1)
    expected = hand_occlusion(x[0, 0].numpy().astype(np.float64), window, stride)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)
    assert ours[:5, :5].abs().max() == 0 and ours[12, 22] > 0  # only windows touching the patch matter
    # and the paper's "drop" map is the very same quantity
    torch.testing.assert_close(explain.occlusion_map(model, x, window, stride, "drop"), ours, atol=1e-6, rtol=1e-5)
    # the wrapper is Captum itself, called with the same window, stride, baseline and target
    from captum.attr import Occlusion

    direct = Occlusion(lambda inp: model(inp).softmax(1)).attribute(
        x, sliding_window_shapes=(1, window, window), strides=(1, stride, stride), baselines=0.0, target=0
    )
    torch.testing.assert_close(ours, direct[0, 0])


def test_every_pixel_covered_at_the_edge():
    masks = explain.window_masks(48, 5, 3)
    assert masks.sum(0).min() >= 1 and masks.shape == (16 * 16, 48, 48)
    assert explain.n_windows(48, 8, 2) == 441 and explain.window_positions(48, 5, 3)[-1] == 45


@pytest.mark.parametrize("window,stride", [(0, 1), (49, 1), (8, 0), (8, -2), (8.0, 2), (True, 2)])
def test_bad_window_or_stride(window, stride):
    model = DeepEmotion(ModelConfig()).eval()
    with pytest.raises(ValueError, match="window|stride"):
        explain.occlusion_map(model, torch.rand(1, 1, 48, 48), window, stride)
    with pytest.raises(ValueError, match="window|stride"):
        explain.captum_occlusion(model, torch.rand(1, 1, 48, 48), window, stride)


def test_bad_mode_target_and_shape():
    model = DeepEmotion(ModelConfig()).eval()
    x = torch.rand(1, 1, 48, 48)
    with pytest.raises(ValueError, match="mode"):
        explain.occlusion_map(model, x, 8, 2, mode="blur")
    with pytest.raises(ValueError, match="target"):
        explain.occlusion_map(model, x, 8, 2, target=7)
    with pytest.raises(ValueError, match="expected one square grey face"):
        explain.occlusion_map(model, torch.rand(2, 1, 48, 48), 8, 2)


def test_stn_view_shapes():
    warped, theta = explain.stn_view(DeepEmotion(ModelConfig()).eval(), torch.rand(1, 1, 48, 48))
    assert warped.shape == (48, 48) and theta.shape == (2, 3)


def test_faithfulness_orders_maps():
    model = OnePatch()
    x = torch.full((1, 1, 48, 48), 0.9)
    good = torch.zeros(48, 48)
    good[10:16, 20:26] = 1.0  # exactly the pixels the model reads
    del_good = explain.perturbation_curve(model, x, good, "deletion")[1]
    del_rand = explain.perturbation_curve(model, x, explain.random_map(48), "deletion")[1]
    ins_good = explain.perturbation_curve(model, x, good, "insertion")[1]
    ins_rand = explain.perturbation_curve(model, x, explain.random_map(48), "insertion")[1]
    assert del_good < del_rand - 0.1 and ins_good > ins_rand + 0.1
    curve, _ = explain.perturbation_curve(model, x, good, "deletion", steps=16)
    assert curve.shape == (17,) and curve[0] > curve[-1]


def test_analyze_derives_captum_from_the_shared_passes():
    """The app's Captum map (derived from the one set of occluded passes) equals Captum's own run."""
    from PIL import Image

    from deep_emotion.results import AnalysisOptions

    from .conftest import EMOTIONS7, pipeline_of

    torch.manual_seed(1)
    model = DeepEmotion(ModelConfig()).eval()
    pipe = pipeline_of({"m": (model, EMOTIONS7)})
    img = Image.fromarray((np.random.default_rng(2).random((48, 48, 3)) * 255).astype(np.uint8))
    methods = ("occlusion-flip", "occlusion-drop", "captum-occlusion")
    fast = pipe.analyze(img, options=AnalysisOptions(methods, 6, 3, detect=False)).faces[0].views["m"]
    slow = (
        pipe.analyze(img, options=AnalysisOptions(methods, 6, 3, detect=False, captum_itself=True)).faces[0].views["m"]
    )
    assert fast.maps["captum-occlusion"].note and not slow.maps["captum-occlusion"].note
    np.testing.assert_allclose(fast.maps["captum-occlusion"].values, slow.maps["captum-occlusion"].values, atol=1e-6)
    np.testing.assert_allclose(slow.maps["captum-occlusion"].values, slow.maps["occlusion-drop"].values, atol=1e-6)
    np.testing.assert_array_equal(fast.maps["occlusion-flip"].values, slow.maps["occlusion-flip"].values)

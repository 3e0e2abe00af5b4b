"""Class-balanced metrics, ECE, flip averaging, logit adjustment and temperature scaling on synthetic data;
the shipped cards' post-hoc blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deep_emotion.models.paper import DeepEmotion, ModelConfig
from deep_emotion.models.posthoc import PostHoc, flip_average
from deep_emotion.training.calibrate import (
    class_log_prior,
    fit_tau,
    fit_temperature,
    negative_log_likelihood,
    plot_reliability,
)
from deep_emotion.training.evaluation import evaluate, expected_calibration_error, metrics


def test_balanced_accuracy_and_macro_f1_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 0, 0])  # class 2 is never predicted
    m = metrics(pred, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)
    # F1 = 2 tp / (support + predicted): a 6/(4+6), b 2/(2+2), c 0
    assert m["macro_f1"] == pytest.approx((0.6 + 0.5 + 0) / 3)
    assert m["per_class"] == {"a": 0.75, "b": 0.5, "c": 0.0}


def test_classes_without_support_are_left_out():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 0, 3])  # class d has no support but is predicted once
    m = metrics(pred, labels, ["a", "b", "c", "d"])
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)
    assert m["macro_f1"] == pytest.approx((6 / 9 + 0.5 + 0) / 3)
    assert m["per_class"]["d"] is None


def test_perfect_predictions_score_one():
    labels = np.array([2, 0, 1, 1])
    m = metrics(labels, labels, ["a", "b", "c"])
    assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == 1.0


def _binary(conf: np.ndarray, correct_prob: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [conf, 1 - conf] whose top label (0) is right with probability `correct_prob`."""
    probs = np.stack([conf, 1 - conf], 1)
    labels = (rng.random(len(conf)) >= correct_prob).astype(int)
    return probs, labels


def test_ece_near_zero_when_calibrated_and_large_when_over_confident():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    probs, labels = _binary(conf, conf, rng)
    assert expected_calibration_error(probs, labels) < 0.01
    probs, labels = _binary(np.full(200_000, 0.99), np.full(200_000, 0.7), rng)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.29, abs=0.01)


def test_ece_by_hand():
    # bins of width 1/15: 0.88 and 0.92 fall in (13/15, 14/15], 0.65 in (9/15, 10/15]
    probs = np.array([[0.88, 0.12], [0.08, 0.92], [0.65, 0.35], [0.65, 0.35]])
    labels = np.array([0, 0, 0, 1])
    # each bin: half the faces, accuracy 0.5; mean confidence 0.9 and 0.65
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.15)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    true_t = 2.5
    logits = torch.tensor(rng.normal(0, 3, (20_000, 5)))
    labels = torch.multinomial((logits / true_t).softmax(1), 1, generator=torch.Generator().manual_seed(0))[:, 0]
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.1)
    assert negative_log_likelihood(logits / t, labels) < negative_log_likelihood(logits, labels)
    assert 0.05 <= fit_temperature(logits * 0, labels) <= 20


def _imbalanced(n: int, priors: list[float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D Gaussian classes; returns labels, class log-likelihoods (a balanced classifier) and log priors."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(priors), n, p=priors)
    mu = np.arange(len(priors)) * 1.5
    x = rng.normal(mu[labels], 1.0)
    loglik = -0.5 * (x[:, None] - mu[None]) ** 2
    return labels, loglik, class_log_prior(labels, len(priors))


def _scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    return metrics(logits.argmax(1), labels, [str(i) for i in range(logits.shape[1])])


def test_fit_tau_balances_a_biased_classifier_within_the_accuracy_budget():
    labels, loglik, log_prior = _imbalanced(30_000, [0.8, 0.15, 0.05], seed=2)
    biased = loglik + log_prior  # Bayes posterior: favours the majority class
    base = _scores(biased, labels)
    tau = fit_tau(biased, labels, log_prior)
    assert 0 < tau <= 2
    after = _scores(biased - tau * log_prior, labels)
    assert after["balanced_accuracy"] > base["balanced_accuracy"] + 0.03
    assert after["accuracy"] >= base["accuracy"] - 0.01
    loose = fit_tau(biased, labels, log_prior, max_accuracy_drop=1.0)  # the budget binds
    assert loose > tau
    assert _scores(biased - loose * log_prior, labels)["balanced_accuracy"] >= after["balanced_accuracy"]


def test_fit_tau_is_zero_for_a_balanced_classifier():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 2000)
    logits = rng.normal(0, 1, (6000, 3)) + 2 * np.eye(3)[labels]
    assert fit_tau(logits, labels, class_log_prior(labels, 3)) == 0.0  # equal priors: nothing to adjust
    perfect = 10 * np.eye(3)[labels]
    imbalanced_prior = np.log(np.array([0.8, 0.15, 0.05]))
    assert fit_tau(perfect, labels, imbalanced_prior) == 0.0  # already right everywhere: no gain, smallest tau


def test_class_log_prior_is_smoothed():
    lp = class_log_prior(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(np.exp(lp), [4 / 7, 2 / 7, 1 / 7])


def test_flip_average_is_the_mean_of_probabilities():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 7, generator=g) * 3, torch.randn(8, 7, generator=g) * 3
    avg = flip_average(a, b)
    torch.testing.assert_close(avg.softmax(1), (a.softmax(1) + b.softmax(1)) / 2)
    torch.testing.assert_close(avg.exp().sum(1), torch.ones(8))  # already normalised log-probabilities
    torch.testing.assert_close(flip_average(a, a).softmax(1), a.softmax(1))


def test_posthoc_adjust_round_trip_and_checks():
    ph = PostHoc(tta_flip=True, tau=0.5, log_prior=(-0.1, -1.0, -3.0), temperature=2.0)
    assert PostHoc.from_dict(ph.to_dict()) == ph
    assert not ph.identity and PostHoc().identity
    logits = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float32)
    out = ph.adjust(logits)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[(1 + 0.05) / 2, (2 + 0.5) / 2, (3 + 1.5) / 2]]))
    torch.testing.assert_close(PostHoc().adjust(logits), logits)
    with pytest.raises(ValueError, match="unknown"):
        PostHoc.from_dict({**ph.to_dict(), "bias": 1.0})
    with pytest.raises(ValueError):
        PostHoc(tau=1.0)
    with pytest.raises(ValueError):
        PostHoc(temperature=0.0)
    with pytest.raises(ValueError):
        ph.adjust(torch.zeros(2, 4))
    card = {"posthoc": {**ph.to_dict(), "chosen_on": "val", "rule": "...", "prior_from": "...", "metrics": {}}}
    assert PostHoc.from_card(card) == ph and PostHoc.from_card({}).identity
    from deep_emotion.models.card import ModelCard

    typed = ModelCard.from_dict(
        {
            **card,
            "name": "m",
            "dataset": "folder",
            "classes": ["a", "b", "c"],
            "model_config": ModelConfig(num_classes=3).to_dict(),
        }
    )
    assert PostHoc.from_card(typed) == ph  # a typed card or its JSON: the same corrections
    assert PostHoc.from_card(ModelCard.from_dict({k: v for k, v in typed.to_dict().items() if k != "posthoc"})).identity


def test_posthoc_logits_averages_the_mirror_image():
    model = DeepEmotion(ModelConfig(num_classes=3)).eval()
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        out = PostHoc(tta_flip=True).logits(model, x)
        expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    torch.testing.assert_close(out.softmax(1), expected)


def test_evaluate_adds_ece_and_keeps_its_keys():
    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig(num_classes=3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 3, 20)
    r = evaluate(model, images, labels, ["a", "b", "c"])
    assert {"accuracy", "n", "classes", "per_class", "confusion", "nll", "ece", "balanced_accuracy", "macro_f1"} <= set(
        r
    )
    assert 0 <= r["ece"] <= 1


def test_plot_reliability_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.3, 500)
    labels = rng.integers(0, 4, 500)
    path = tmp_path / "reliability.png"
    plot_reliability(probs, probs**0.5 / (probs**0.5).sum(1, keepdims=True), labels, "synthetic: test", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(path).size == (600, 540)


def test_shipped_cards_carry_posthoc_chosen_on_val(data_root):
    from deep_emotion.models.card import list_checkpoints
    from deep_emotion.models.checkpoints import load_checkpoint

    names = list_checkpoints()
    assert names
    for name in names:
        _, card = load_checkpoint(name)
        block = card.posthoc
        assert block, f"{name}: no posthoc block; run train/calibrate.py --data-dir {data_root}"
        ph = PostHoc.from_card(card)
        assert block["chosen_on"] == "val" and len(ph.log_prior) == len(card.classes)
        m = block["metrics"]
        assert m["test"]["raw"]["accuracy"] == pytest.approx(card.metrics["test"].accuracy, abs=1e-6)
        assert m["val"]["raw"]["accuracy"] == pytest.approx(card.metrics["val"].accuracy, abs=1e-6)
        assert m["val"]["posthoc"]["accuracy"] >= m["val"]["raw"]["accuracy"] - 0.01, name
        for s in ("val", "test"):
            assert card.metrics[s].balanced_accuracy == pytest.approx(m[s]["raw"]["balanced_accuracy"])
            assert card.metrics[s].macro_f1 == pytest.approx(m[s]["raw"]["macro_f1"])


# --- the model carries its card's corrections ------------------------------------------------------------------


def _posthoc_model(tta: bool = True, stages: tuple[int, ...] = ()):
    from deep_emotion.models.paper import DeepEmotion, ModelConfig

    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig(num_classes=3, stages=stages)).eval()
    with torch.no_grad():  # an STN that is not the identity, so the mirrored face really differs
        model.stn.regressor[-1].bias.add_(torch.tensor([0.1, 0.2, -0.1, 0.05, -0.1, 0.1]))
    model.posthoc = PostHoc(tta_flip=tta, tau=0.7, log_prior=(-0.2, -1.5, -3.0), temperature=0.8)
    return model


def test_model_forward_applies_posthoc_in_eval_only():
    model = _posthoc_model()
    x = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        raw, mirrored = model.network(x), model.network(x.flip(-1))
        expected = (flip_average(raw, mirrored) - 0.7 * torch.tensor([-0.2, -1.5, -3.0])) / 0.8
        assert torch.allclose(model(x), expected, atol=1e-5)
        model.train()
        model.dropout.p = 0.0
        assert torch.allclose(model(x), model.network(x), atol=1e-6)  # training sees the network alone


@pytest.mark.parametrize("stages", [(), (8, 8)])
@pytest.mark.parametrize("window,stride", [(8, 2), (5, 3), (12, 6)])
def test_incremental_occlusion_with_flip_averaging_equals_plain_passes(stages, window, stride):
    """Mirrored copies are the mirrored face with mirrored windows (clipped edge windows included)."""
    from deep_emotion import explain

    model = _posthoc_model(stages=stages)
    x = torch.rand(1, 1, 48, 48)
    with torch.inference_mode():
        p0, p, _ = explain.occluded_probabilities(model, x, window, stride)
        q0, q, _ = explain.occluded_probabilities(lambda t: model(t), x, window, stride)  # not incremental
    assert torch.allclose(p0, q0, atol=1e-5) and torch.allclose(p, q, atol=1e-5)


def test_load_checkpoint_with_posthoc_reads_the_card():
    from deep_emotion.models.checkpoints import load_checkpoint

    raw, card = load_checkpoint("fer2013")
    corrected, _ = load_checkpoint("fer2013", posthoc=True)
    assert raw.posthoc is None and corrected.posthoc == PostHoc.from_card(card)
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(corrected(x), corrected.posthoc.logits(raw, x), atol=1e-5)


def test_load_checkpoint_refuses_a_bad_posthoc_block(tmp_path):
    import json
    import shutil

    from deep_emotion.errors import CheckpointError
    from deep_emotion.models.card import checkpoint_dir
    from deep_emotion.models.checkpoints import load_checkpoint

    for name in ("fer2013.safetensors", "fer2013.json"):
        shutil.copy(checkpoint_dir() / name, tmp_path / name)
    card = json.loads((tmp_path / "fer2013.json").read_text())
    card["posthoc"]["log_prior"] = [0.0, 1.0]
    (tmp_path / "fer2013.json").write_text(json.dumps(card))
    load_checkpoint(tmp_path / "fer2013.safetensors")  # the network alone still loads
    with pytest.raises(CheckpointError, match="posthoc"):
        load_checkpoint(tmp_path / "fer2013.safetensors", posthoc=True)

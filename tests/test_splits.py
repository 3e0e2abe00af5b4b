"""Protocols: the paper's split sizes, subject-independent folds, reproducibility; canonical class names."""

from __future__ import annotations

import numpy as np
import pytest

from deep_emotion.classes import CANONICAL, canonical, shared_classes
from deep_emotion.training.data.base import FaceDataset
from deep_emotion.training.data.fer2013 import CLASSES as FER
from deep_emotion.training.data.ferplus import CLASSES as FERPLUS
from deep_emotion.training.data.splits import subject_fold_split
from deep_emotion.training.data.subjects import CKPLUS_CLASSES, FERG_CLASSES, JAFFE_CLASSES


def fake(name: str, labels: np.ndarray, subjects: np.ndarray, classes, protocols) -> FaceDataset:
    n = len(labels)
    return FaceDataset(
        name,
        np.zeros((n, 48, 48), np.uint8),
        labels.astype(np.int64),
        tuple(classes),
        np.full(n, ""),
        subjects,
        protocols,
    )


@pytest.fixture
def jaffe_like() -> FaceDataset:
    # JAFFE's real make-up: 10 subjects, 213 photos, about 3 per subject and emotion
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(7), 3) for _ in range(10)] + [rng.integers(0, 7, 3)])
    subjects = np.array([f"S{i // 21}" for i in range(210)] + ["S9"] * 3)
    return fake("jaffe", labels, subjects, JAFFE_CLASSES, ("paper", "subject-folds", "random"))


@pytest.fixture
def ckplus_like() -> FaceDataset:
    rng = np.random.default_rng(1)
    subjects = np.array([f"S{int(s):03d}" for s in rng.integers(0, 118, 981)])
    return fake("ckplus", rng.integers(0, 7, 981), subjects, CKPLUS_CLASSES, ("random", "subject-folds"))


def test_jaffe_paper_sizes(jaffe_like):
    s = jaffe_like.split("paper", seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (120, 23, 70)
    assert np.bincount(jaffe_like.labels[s.test], minlength=7).tolist() == [10] * 7
    assert len(np.unique(np.concatenate([s.train, s.val, s.test]))) == 213


def test_ckplus_random_sizes(ckplus_like):
    s = ckplus_like.split("random", seed=0)
    assert (len(s.val), len(s.test)) == (98, 196) and len(s.train) == 981 - 98 - 196
    assert abs(len(s.train) / 981 - 0.7) < 0.01


@pytest.mark.parametrize("protocol", ["random", "subject-folds"])
def test_same_seed_same_split(ckplus_like, protocol):
    fold = 3 if protocol == "subject-folds" else None
    a, b = ckplus_like.split(protocol, 7, fold), ckplus_like.split(protocol, 7, fold)
    c = ckplus_like.split(protocol, 8, fold)
    assert all(np.array_equal(a[k], b[k]) for k in ("train", "val", "test"))
    assert not np.array_equal(a.test, c.test)


def test_subject_folds_share_no_subject(ckplus_like):
    seen_test = []
    for k in range(10):
        s = ckplus_like.split("subject-folds", seed=0, fold=k)
        parts = [set(ckplus_like.subjects[s[p]]) for p in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(s.train) + len(s.val) + len(s.test) == 981
        seen_test.append(s.test)
    all_test = np.concatenate(seen_test)
    assert sorted(all_test.tolist()) == list(range(981))  # every image is tested exactly once


def test_jaffe_leave_one_subject_out(jaffe_like):
    for k in range(10):
        s = jaffe_like.split("subject-folds", seed=0, fold=k)
        assert len(set(jaffe_like.subjects[s.test])) == 1


def test_fold_errors():
    with pytest.raises(ValueError, match="fold must be"):
        subject_fold_split(np.array(["a", "b", "c"]), 5, n_folds=3)
    with pytest.raises(ValueError, match="cannot make"):
        subject_fold_split(np.array(["a", "b"]), 0, n_folds=3)


@pytest.mark.parametrize("classes", [FER, FERPLUS, CKPLUS_CLASSES, JAFFE_CLASSES, FERG_CLASSES])
def test_canonical_covers_every_data_set(classes):
    names = [canonical(c) for c in classes]
    assert len(set(names)) == len(classes) and set(names) <= set(CANONICAL)


def test_canonical_examples():
    assert canonical("Happiness") == canonical("joy") == "happy"
    assert canonical("anger") == "angry" and canonical("sadness") == "sad"
    with pytest.raises(ValueError, match="unknown emotion"):
        canonical("bored")
    assert shared_classes(FERPLUS, CKPLUS_CLASSES) == [
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "contempt",
    ]
    assert "neutral" not in shared_classes(FER, CKPLUS_CLASSES)

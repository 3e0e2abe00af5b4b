"""Protocols: how a data set is split into train / validation / test. Seeded, so identical across runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deep_emotion.training.data.base import FaceDataset


@dataclass(frozen=True)
class Split:
    """Indices into a FaceDataset for each part of a protocol."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    protocol: str

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise KeyError(f"unknown split {name!r}: expected train, val or test")
        return getattr(self, name)


# official part names of each data set -> split
OFFICIAL_PARTS = {
    "Training": "train",
    "PublicTest": "val",
    "PrivateTest": "test",  # FER2013
    "Train": "train",
    "Valid": "val",
    "Test": "test",  # FERPlus
}


def make_split(ds: FaceDataset, protocol: str, seed: int = 0, fold: int | None = None, n_folds: int = 10) -> Split:
    if protocol not in ds.protocols:
        raise ValueError(f"{ds.name}: unknown protocol {protocol!r}; this data set knows {list(ds.protocols)}")
    if protocol in ("paper", "official"):
        if ds.name == "jaffe":
            return jaffe_paper_split(ds, seed)
        return official_split(ds, protocol)
    if protocol == "random":
        fractions = (0.7, 0.1, 0.2) if ds.name == "ckplus" else (0.8, 0.1, 0.1)
        return random_split(len(ds), fractions, seed)
    if protocol == "subject-folds":
        if fold is None:
            raise ValueError(f"{ds.name}: protocol 'subject-folds' needs a fold number (0..{n_folds - 1})")
        return subject_fold_split(ds.subjects, fold, n_folds, seed)
    raise ValueError(f"{ds.name}: protocol {protocol!r} has no splitter")


def subject_folds(subjects: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Subjects shuffled (seeded) and dealt into `n_folds` groups; returns the image indices of each fold."""
    unique = np.unique(subjects)
    if len(unique) < n_folds:
        raise ValueError(f"{len(unique)} subjects cannot make {n_folds} subject-independent folds")
    order = np.random.default_rng(seed).permutation(unique)
    fold_of = {s: i % n_folds for i, s in enumerate(order)}
    ids = np.array([fold_of[s] for s in subjects])
    return [np.flatnonzero(ids == k) for k in range(n_folds)]


def subject_fold_split(subjects: np.ndarray, fold: int, n_folds: int = 10, seed: int = 0) -> Split:
    """Fold `fold` is the test part, the next fold the validation part, the rest train: no subject in two parts."""

    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, not {fold}")
    folds = subject_folds(subjects, n_folds, seed)
    test, val = folds[fold], folds[(fold + 1) % n_folds]
    train = np.sort(np.concatenate([f for k, f in enumerate(folds) if k not in (fold, (fold + 1) % n_folds)]))
    return Split(train, val, test, f"subject-folds:{fold}/{n_folds}")


def official_split(ds: FaceDataset, protocol: str) -> Split:

    parts = {"train": [], "val": [], "test": []}
    for i, g in enumerate(ds.groups):
        if g in OFFICIAL_PARTS:
            parts[OFFICIAL_PARTS[g]].append(i)
    missing = [k for k, v in parts.items() if not v]
    if missing:
        found = sorted(set(ds.groups.tolist()))
        raise ValueError(
            f"{ds.name}: protocol {protocol!r} needs the official parts for {missing}, but the data only has {found}"
        )
    return Split(*(np.asarray(parts[k], dtype=np.int64) for k in ("train", "val", "test")), protocol=protocol)


def random_split(n: int, fractions: tuple[float, float, float], seed: int) -> Split:
    """Random (not subject-independent) split; sizes rounded down for val and test."""

    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
    return Split(
        np.sort(perm[n_val + n_test :]), np.sort(perm[:n_val]), np.sort(perm[n_val : n_val + n_test]), "random"
    )


def jaffe_paper_split(ds: FaceDataset, seed: int, per_class_test: int = 10, n_val: int = 23) -> Split:
    """The paper's JAFFE protocol: 10 test images per emotion (70), 23 validation, the rest (120) train."""

    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.choice(np.flatnonzero(ds.labels == c), per_class_test, replace=False) for c in range(len(ds.classes))]
    )
    rest = rng.permutation(np.setdiff1d(np.arange(len(ds)), test))
    return Split(np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test), "paper")

"""Data-set readers. Each returns a `FaceDataset`; `load_dataset(name, root)` picks the reader by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from deep_emotion.errors import DataLayoutError

from .base import FaceDataset, Split
from .fer2013 import read_fer2013
from .ferplus import majority_label, read_ferplus
from .folder import read_folder
from .subjects import read_ckplus, read_ferg, read_jaffe

if TYPE_CHECKING:
    from deep_emotion.models.card import ModelCard

READERS: dict[str, Callable[..., FaceDataset]] = {
    "fer2013": read_fer2013,
    "ferplus": read_ferplus,
    "ckplus": read_ckplus,
    "jaffe": read_jaffe,
    "ferg": read_ferg,
    "folder": read_folder,
}


def resolve_root(name: str, root: str | Path) -> Path:
    """`root` may be the data set's own folder or a folder holding it under its name (e.g. ../shared/data)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataLayoutError(f"data directory {root} does not exist")
    if (root / name).is_dir() and name != "folder":
        return root / name
    return root


def reader_options(name: str, face_crop: dict | None) -> dict:
    """Reader arguments that a model card fixes: JAFFE's photos are cropped with the card's face framing."""
    if name == "jaffe" and face_crop:
        from deep_emotion.faces import Framing

        return {"framing": Framing.from_card(face_crop)}
    return {}


def card_data(card: ModelCard, root: str | Path, protocol: str | None = None) -> tuple[FaceDataset, Split]:
    """The data set a model card names, read as the card says (face crop), split by the card's protocol,
    seed and fold (or by `protocol`). Fold cards carry protocols such as "subject-folds:3/10"."""
    ds = load_dataset(card.dataset, root, **reader_options(card.dataset, card.face_crop))
    protocol = (protocol or card.protocol).split(":")[0]
    return ds, ds.split(protocol, card.seed or 0, card.fold)


def load_dataset(name: str, root: str | Path, **kwargs) -> FaceDataset:
    if name not in READERS:
        raise DataLayoutError(f"unknown data set {name!r}; known: {', '.join(READERS)}")
    return READERS[name](resolve_root(name, root), **kwargs)


__all__ = [
    "FaceDataset",
    "Split",
    "READERS",
    "load_dataset",
    "card_data",
    "reader_options",
    "resolve_root",
    "majority_label",
    "read_fer2013",
    "read_ferplus",
    "read_folder",
    "read_ckplus",
    "read_jaffe",
    "read_ferg",
]

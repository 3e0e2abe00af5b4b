"""One canonical name per emotion, so that models and data sets with different vocabularies can be compared."""

from __future__ import annotations

CANONICAL = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
ALIASES = {
    "anger": "angry",
    "angry": "angry",
    "an": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "di": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "fe": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "ha": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
    "neutral": "neutral",
    "ne": "neutral",
    "contempt": "contempt",
}


def canonical(name: str) -> str:
    """'happiness' -> 'happy'; an unknown name is a ValueError listing the canonical set."""
    key = name.strip().lower()
    if key not in ALIASES:
        raise ValueError(f"unknown emotion name {name!r}; canonical names: {', '.join(CANONICAL)}")
    return ALIASES[key]


def canonical_or_label(name: str) -> str:
    """The canonical name of an emotion, or the name itself when it is none (a folder data set's own class)."""
    return ALIASES.get(name.strip().lower(), name)


def shared_classes(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> list[str]:
    """Canonical names both class lists contain, in canonical order."""
    ca, cb = {canonical(x) for x in a}, {canonical(x) for x in b}
    return [c for c in CANONICAL if c in ca and c in cb]


def majority(tops: list[str]) -> str:
    """The emotion most of the models name, as a canonical name (a tie: the one named first); '' for none.
    A class that is no emotion (a folder data set's own) counts by its label."""
    names = [canonical_or_label(t) for t in tops]
    return max(names, key=lambda n: (names.count(n), -names.index(n))) if names else ""

"""What the commands share: the --model list and the framings `evaluate --as-photos` offers (torch-free)."""

from __future__ import annotations

from deep_emotion.errors import DeepEmotionError

FRAMING_NAMES = ("default", "legacy", "level", "align", "unturned")


def framings() -> dict:
    """The framings `evaluate --as-photos --framing` offers (imported only when asked for)."""
    from deep_emotion.faces.framing import DEFAULT_FRAMING, LEGACY_FRAMING, Framing

    return {
        "default": DEFAULT_FRAMING,
        "legacy": LEGACY_FRAMING,
        "level": Framing(align=True, align_above=0.0),
        "align": Framing(align=True, align_above=0.0),  # the former name of "level"
        "unturned": Framing(align=False),
    }


def model_names(values: list[str] | str) -> list[str]:
    """--model values, each comma-separated or repeated: ['fer2013,ferplus', 'jaffe'] -> three names."""
    parts = [values] if isinstance(values, str) else values
    names: list[str] = []
    for part in parts:
        names += [n for n in dict.fromkeys(n.strip() for n in part.split(",")) if n and n not in names]
    if not names:
        raise DeepEmotionError("--model: name at least one model (see `deep-emotion models`)")
    return names


MODELS_HELP = "bundled names (see `models`) or .safetensors paths, comma-separated or repeated"

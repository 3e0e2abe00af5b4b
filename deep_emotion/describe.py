"""Results in words, written once for every front end (Streamlit, Gradio, the CLI): whether the models agree,
what a map shows, which map is the most faithful, what was skipped, and how the faces were found.

Plain text: a front end may add its own emphasis (bold model names) but says nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from deep_emotion.classes import canonical_or_label

if TYPE_CHECKING:
    from deep_emotion.explain.registry import Map
    from deep_emotion.faces.detect import Face
    from deep_emotion.results import ModelView

WHOLE_PICTURE = (
    "No face was found, but the picture is small and square like a cut-out face, so all of it was read "
    "as one face. If it holds no face, the predictions mean nothing."
)
WHOLE_IMAGE_ASKED = "No face was found, so the whole picture was read as one face, as asked."
NO_FACE = "No face was found in this photo."


def method_title(method: str) -> str:
    """The registered title of an explanation method ('Occlusion (paper, flip)'), or its name."""
    from deep_emotion.explain.registry import EXPLAINERS

    return EXPLAINERS[method].title if method in EXPLAINERS else method


def agreement(tops: dict[str, str]) -> tuple[bool, str]:
    """(whether all models name the same class, the sentence): 'All models agree: fer2013: happy; ferplus: happy'."""
    line = "; ".join(f"{m}: {t}" for m, t in tops.items())
    agree = len({canonical_or_label(t) for t in tops.values()}) <= 1
    return agree, ("All models agree: " if agree else "The models disagree: ") + line


def views_agreement(views: Sequence[ModelView]) -> tuple[bool, str]:
    return agreement({v.model: v.top for v in views})


def faces_found(faces: Sequence[Face], asked_whole_image: bool = False) -> str:
    """How the faces were found, in one sentence ('' when MTCNN found them the usual way)."""
    if not faces:
        return NO_FACE
    if not faces[0].detected:
        return WHOLE_IMAGE_ASKED if asked_whole_image else WHOLE_PICTURE
    return ""


def map_caption(model: str, m: Map, window: int | None = None) -> str:
    """The map in words, for those who cannot see the picture: its range and where it peaks; a flat map says what
    that means (for occlusion: no window of this size changes the prediction)."""
    if m.outline is not None:
        from deep_emotion.explain.regions import turned_degrees

        return f"{model}: the STN samples a quadrilateral turned {turned_degrees(m.outline):+.0f}°"
    lo, hi = float(m.values.min()), float(m.values.max())
    if hi - lo <= 1e-9 or (not m.signed and hi <= 0):
        if m.method.startswith("occlusion") or m.method == "captum-occlusion":
            size = f" of {window}x{window}" if window else " of this size"
            return f"{model}: no window{size} changes the prediction: the map is flat (the answer is robust to it)"
        return f"{model}: the map is flat ({m.unit} {lo:.3g} everywhere): it points at nothing"
    r, c = np.unravel_index(int(np.argmax(m.values)), m.values.shape)
    return f"{model}: {m.unit} from {lo:.3g} to {hi:.3g}, highest at row {r}, column {c}"


def region_sentence(view: ModelView) -> str:
    """'blurring the mouth lowers happy by 0.69' (the facial-regions map), '' without it."""
    m = view.maps.get("regions")
    if m is None or not m.regions:
        return ""
    from deep_emotion.explain.regions import region_sentence as sentence

    return sentence(m, view.target) + (f" ({m.note})" if m.note else "")


def most_faithful(view: ModelView) -> str:
    """'most faithful map for this face: Grad-CAM (insertion - deletion +0.312; random map +0.020)'; when no map
    does better than the random one, it says so; '' without faithfulness scores."""
    best = view.most_faithful()
    if not best or not view.faithfulness:
        return ""
    f = view.faithfulness
    score = f"insertion - deletion {f[best]['difference']:+.3f}"
    if "random" in f and f[best]["difference"] <= f["random"]["difference"]:
        return (
            f"no map does better than a random one for this face (best: {method_title(best)}, {score}; "
            f"random map {f['random']['difference']:+.3f})"
        )
    rnd = f"; random map {f['random']['difference']:+.3f}" if "random" in f else ""
    return f"most faithful map for this face: {method_title(best)} ({score}{rnd})"


def skipped(view: ModelView) -> list[str]:
    """One sentence per map that does not apply to this model: 'Grad-CAM skipped: ...'."""
    return [f"{method_title(m)} skipped: {why}" for m, why in view.skipped.items()]


def consensus_sentence(consensus: dict[str, float] | None) -> str:
    """'Together the models say happy (0.93)', '' without a consensus (one model)."""
    if not consensus:
        return ""
    top = max(consensus, key=consensus.get)
    return f"Together the models say {top} ({consensus[top]:.2f})"


def view_lines(views: Sequence[ModelView], consensus: dict[str, float] | None = None) -> list[str]:
    """Everything above for one face, one line each: agreement, the consensus, then per model its regions, most
    faithful map and skipped maps."""
    lines = [views_agreement(views)[1]]
    if consensus:
        lines.append(consensus_sentence(consensus))
    for v in views:
        for line in (region_sentence(v), most_faithful(v), *skipped(v)):
            if line:
                lines.append(f"{v.model}: {line}")
    return lines

"""Explanation methods as plugins: one registry, one signature, one kind of answer.

Every method is a function `fn(model, x, target, context) -> Map`:
- `model`: logits of grey faces (N, 1, H, W) in [0, 1] — with its card's post-hoc corrections when it was
  loaded with them, so a map explains the probabilities the user sees;
- `x`: one face (1, 1, H, W); `target`: the class index explained;
- `context`: what some methods need besides (occlusion window and stride, the face's landmarks in crop pixels,
  step counts) and the occluded passes the occlusion methods share.
It returns a `Map`: (H, W) values in input pixels, whether they are signed, their unit and what they cost.
`register_explainer` adds a method (see the ones below); `explain_face` runs several and reports, instead of
raising, the ones that do not apply to a model (e.g. no spatial transformer), with a one-line reason.

Conventions, shared with occlusion (explain.py): the baseline is black (0), the same as occlusion's; every
signed map is in units of the target's probability, positive = evidence for the class. Grad-CAM is computed in
the STN-warped frame the features see and carried back to the input through the inverse of θ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


class ExplainerUnavailable(Exception):
    """The method does not apply to this model (the reason is shown to the user instead of a map)."""


@dataclass
class Map:
    """One explanation of one face: (H, W) values over the input and what they mean."""

    method: str
    values: np.ndarray = field(repr=False)  # (H, W) float32, input pixels
    signed: bool  # True: positive = evidence for the target class, negative = against
    unit: str
    forward_passes: int  # images through the network (a flip-averaging model counts each face twice)
    backward_passes: int
    seconds: float = 0.0
    regions: dict[str, float] | None = None  # region ablation: region -> fall of the target's probability
    outline: np.ndarray | None = field(default=None, repr=False)  # STN: (4, 2) corners x, y in input pixels
    note: str = ""  # e.g. "one set of occluded passes for all three occlusion maps", IG's completeness gap

    def to_dict(self) -> dict[str, Any]:
        peak = np.unravel_index(int(np.argmax(self.values)), self.values.shape)
        d = {
            "signed": self.signed,
            "unit": self.unit,
            "min": round(float(self.values.min()), 5),
            "max": round(float(self.values.max()), 5),
            "mean": round(float(self.values.mean()), 5),
            "peak": [int(peak[0]), int(peak[1])],
            "forward_passes": self.forward_passes,
            "backward_passes": self.backward_passes,
            "seconds": round(self.seconds, 4),
        }
        if self.regions is not None:
            d["regions"] = {k: round(v, 4) for k, v in self.regions.items()}
        if self.outline is not None:
            d["outline"] = np.round(self.outline, 2).tolist()
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Context:
    """Settings and shared work for the methods explaining one face with one model."""

    window: int = 8
    stride: int = 2
    baseline: float = 0.0
    landmarks: np.ndarray | None = None  # (5, 2) eyes, nose, mouth corners in crop pixels; None: typical positions
    ig_steps: int = 50
    smoothgrad_samples: int = 20
    smoothgrad_sigma: float = 0.15  # noise standard deviation, pixel scale [0, 1]
    region_blur: float = 4.0  # facial regions: Gaussian sigma (pixels) of the blurred face that replaces a region
    captum_itself: bool = False  # Captum Occlusion: call Captum instead of reusing the shared occluded passes
    batch_size: int = 128
    occluded: tuple | None = field(default=None, repr=False)  # the occlusion maps' shared passes (occlusion.py)


Explainer = Callable[[nn.Module, torch.Tensor, int, Context], Map]


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # short, for captions
    about: str  # one sentence for users
    fn: Explainer
    target_dependent: bool = True  # False: the same map whatever class is explained (the STN's area)


EXPLAINERS: dict[str, Method] = {}


def register_explainer(
    name: str, title: str, about: str, target_dependent: bool = True
) -> Callable[[Explainer], Explainer]:
    """Decorator: add `fn(model, x, target, context) -> Map` to the registry under `name`."""

    def add(fn: Explainer) -> Explainer:
        if name in EXPLAINERS:
            raise ValueError(f"explainer {name!r} is already registered")
        EXPLAINERS[name] = Method(name, title, about, fn, target_dependent)
        return fn

    return add


def list_explainers() -> list[str]:
    return list(EXPLAINERS)


def check_methods(methods: tuple[str, ...] | list[str]) -> None:
    unknown = [m for m in methods if m not in EXPLAINERS]
    if unknown:
        raise ValueError(
            f"unknown explanation method(s) {', '.join(map(repr, unknown))}; known: {', '.join(EXPLAINERS)}"
        )


def explain_face(
    model: nn.Module, x: torch.Tensor, target: int, methods: tuple[str, ...] | list[str], context: Context | None = None
) -> tuple[dict[str, Map], dict[str, str]]:
    """Run `methods` on one face: (maps by method, reasons by method for those that do not apply or fail)."""
    check_methods(methods)
    context = context or Context()
    maps, skipped = {}, {}
    for name in methods:
        t0 = time.perf_counter()
        try:
            m = EXPLAINERS[name].fn(model, x, target, context)
        except ExplainerUnavailable as e:
            skipped[name] = str(e)
            continue
        except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as e:  # a plugin that breaks on
            first = (str(e).strip().splitlines() or [""])[0][:200]  # this model: a reason, not a traceback
            skipped[name] = f"failed on this model ({type(e).__name__}: {first})"
            continue
        m.seconds = time.perf_counter() - t0
        maps[name] = m
    return maps, skipped


# --- helpers ------------------------------------------------------------------------------


def images_per_face(model: nn.Module) -> int:
    """Network passes per face: 2 when the model averages with the mirrored face (post-hoc flip)."""
    post = getattr(model, "posthoc", None)
    return 2 if post is not None and post.tta_flip and not model.training else 1


def _probability(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda inp: model(inp).softmax(1)


class _Gradients:
    """Inside `analyze`'s inference mode: a context where autograd records, and a differentiable copy of x."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self._modes = (torch.inference_mode(False), torch.enable_grad())

    def __enter__(self) -> torch.Tensor:
        for m in self._modes:
            m.__enter__()
        return self.x.detach().clone()  # a normal tensor, even when x was made in inference mode

    def __exit__(self, *exc) -> None:
        for m in reversed(self._modes):
            m.__exit__(*exc)


def _values(a: torch.Tensor) -> np.ndarray:
    return a.detach().reshape(a.shape[-2:]).to(torch.float32).cpu().numpy()

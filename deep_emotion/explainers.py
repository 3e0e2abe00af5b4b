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

import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import explain


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
        d = {"signed": self.signed, "unit": self.unit, "min": round(float(self.values.min()), 5),
             "max": round(float(self.values.max()), 5), "mean": round(float(self.values.mean()), 5),
             "peak": [int(peak[0]), int(peak[1])], "forward_passes": self.forward_passes,
             "backward_passes": self.backward_passes, "seconds": round(self.seconds, 4)}
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
    _occluded: tuple | None = field(default=None, repr=False)

    def occluded(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p of the face, p of every occluded copy, window masks): computed once for all occlusion maps."""
        if self._occluded is None:
            with torch.no_grad():
                self._occluded = explain.occluded_probabilities(model, x, self.window, self.stride, self.baseline,
                                                                self.batch_size)
        return self._occluded


Explainer = Callable[[nn.Module, torch.Tensor, int, Context], Map]


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # short, for captions
    about: str  # one sentence for users
    fn: Explainer
    target_dependent: bool = True  # False: the same map whatever class is explained (the STN's area)


EXPLAINERS: dict[str, Method] = {}


def register_explainer(name: str, title: str, about: str, target_dependent: bool = True) -> Callable[[Explainer], Explainer]:
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
        raise ValueError(f"unknown explanation method(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(EXPLAINERS)}")


def explain_face(model: nn.Module, x: torch.Tensor, target: int, methods: tuple[str, ...] | list[str],
                 context: Context | None = None) -> tuple[dict[str, Map], dict[str, str]]:
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


# --- occlusion (explain.py: batched, folded, incremental) -----------------------------------

OCCLUSION_SHARED = "shares one set of occluded passes with the other occlusion maps"


def _occlusion_map(model: nn.Module, x: torch.Tensor, target: int, ctx: Context, mode: str, method: str) -> Map:
    """The paper's map of `mode` ("flip" or "drop") from the shared occluded passes, as method `method`."""
    p0, p, masks = ctx.occluded(model, x)
    values = explain.maps_from_probabilities(p0, p, masks, target)[mode]
    signed = mode == "drop"
    return Map(method, _values(values), signed, "probability" if signed else "label flips",
               len(masks) * images_per_face(model), 0, note=OCCLUSION_SHARED)


@register_explainer("occlusion-flip", "Occlusion (paper, flip)",
                    "How many sliding black windows over a pixel change the predicted label (the paper's map).")
def occlusion_flip(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    return _occlusion_map(model, x, target, ctx, "flip", "occlusion-flip")


@register_explainer("occlusion-drop", "Occlusion (paper, drop)",
                    "The average fall of the class's probability when a black window hides the pixel.")
def occlusion_drop(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    return _occlusion_map(model, x, target, ctx, "drop", "occlusion-drop")


@register_explainer("captum-occlusion", "Captum Occlusion",
                    "Captum's sliding-window occlusion on the softmax: equal to the paper's drop map by definition.")
def captum_occlusion(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    if not ctx.captum_itself:  # the drop map of the shared passes (tests check it against Captum's own run)
        return _occlusion_map(model, x, target, ctx, "drop", "captum-occlusion")
    values = explain.captum_occlusion(model, x, ctx.window, ctx.stride, target, ctx.baseline,
                                      perturbations_per_eval=ctx.batch_size)
    n = explain.n_windows(x.shape[-1], ctx.window, ctx.stride) + 1
    return Map("captum-occlusion", _values(values), True, "probability", n * images_per_face(model), 0)


# --- gradients (Captum) --------------------------------------------------------------------

@register_explainer("integrated-gradients", "Integrated Gradients",
                    "Gradients along the path from a black face to this one; they add up to the probability "
                    "the face gains over black.")
def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    from captum.attr import IntegratedGradients

    with _Gradients(x) as xg:
        attr, delta = IntegratedGradients(_probability(model)).attribute(
            xg, baselines=ctx.baseline, target=target, n_steps=ctx.ig_steps, internal_batch_size=ctx.ig_steps,
            return_convergence_delta=True)
    k = images_per_face(model)
    gap = float(delta.reshape(-1)[0])
    note = (f"the attributions add up to {float(attr.sum()):.3f}, {gap:+.3f} off the probability the face gains "
            f"over black ({ctx.ig_steps} steps; more steps close the gap)")
    # forward: the path's points, then face and baseline for the completeness check; backward: the path's points
    return Map("integrated-gradients", _values(attr), True, "probability", (ctx.ig_steps + 2) * k, ctx.ig_steps * k,
               note=note)


@register_explainer("smoothgrad", "SmoothGrad",
                    "How the class's probability reacts to each pixel (its gradient), averaged over noisy copies.")
def smoothgrad(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    """SmoothGrad (Smilkov et al.): the gradient of the target's probability averaged over noisy copies of the
    face — signed. The common |gradient| variant (Captum NoiseTunnel over Saliency's default abs=True) fails the
    weight-randomisation sanity check here: on the paper network its map has a rank correlation of ~0.8 with an
    untrained network's (the ranks follow which pixels the valid convolutions reach, not what was learned),
    against ~0 for the signed average (tests/test_explainers.py). The noise comes from a generator seeded per
    call: the same map for the same face, also when several sessions explain at once."""
    from captum.attr import Saliency

    g = torch.Generator(device=x.device).manual_seed(0)
    noise = torch.randn((ctx.smoothgrad_samples, *x.shape[1:]), generator=g, device=x.device) * ctx.smoothgrad_sigma
    with _Gradients(x) as xg:
        attr = Saliency(_probability(model)).attribute((xg + noise).requires_grad_(), target=target, abs=False)
    n = ctx.smoothgrad_samples * images_per_face(model)
    return Map("smoothgrad", _values(attr.mean(0, keepdim=True)), True, "d probability / d pixel", n, n)


_CAM_LAYERS: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def cam_layer(model: nn.Module) -> nn.Module:
    """Grad-CAM's layer: the last block of the model's `features` whose output is still a spatial map (more than
    1x1), stepping back over a final pooling — the paper network's last ReLU (9x9, after its pool), the wide
    network's last ReLU (12x12), a ResNet's last residual block. (On the conv's own output a BatchNorm
    between conv and ReLU can flip the sign: the wide network's map came out empty there.)"""
    if model in _CAM_LAYERS:
        return _CAM_LAYERS[model]
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module) or not any(isinstance(m, nn.Conv2d) for m in features.modules()):
        raise ExplainerUnavailable("Grad-CAM needs a convolution layer in the model's features; this model has none")
    blocks = list(features.children()) or [features]
    shapes: dict[int, torch.Size] = {}
    def record(k: int):
        def hook(module, inputs, output) -> None:  # returns None: the output is left as it is
            shapes.setdefault(k, output.shape)
        return hook

    hooks = [b.register_forward_hook(record(k)) for k, b in enumerate(blocks)]
    size = int(model.config.input_size)
    try:
        with torch.no_grad():
            getattr(model, "network", model)(torch.zeros(1, 1, size, size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    spatial = [k for k, shape in shapes.items() if len(shape) == 4 and shape[-1] > 1 and shape[-2] > 1]
    if not spatial:
        raise ExplainerUnavailable("Grad-CAM needs a spatial feature map; this model's features have none")
    k = max(spatial)
    if isinstance(blocks[k], (nn.MaxPool2d, nn.AvgPool2d)) and k - 1 in spatial:
        k -= 1  # as Grad-CAM takes VGG's last conv block: before its final pooling (12x12 rather than 6x6)
    _CAM_LAYERS[model] = blocks[k]
    return _CAM_LAYERS[model]


_CELLS: "weakref.WeakKeyDictionary[nn.Module, tuple[float, float, int]]" = weakref.WeakKeyDictionary()


def cam_cells(model: nn.Module, layer: nn.Module, size: int) -> tuple[float, float, int]:
    """Where the Grad-CAM layer's cells sit on the features' input: (centre of the first cell, step between
    cells, cells per side), in pixel indices, found once per model by following the gradient of the first and
    last cell back to a random input (the middle of each one's receptive field). Convolutions without padding
    (the paper network's) leave the grid short of the border: its 9 cells are centred at pixels 7.5 ... 39.5,
    not spread over 0 ... 47 as plain upsampling would put them."""
    if model in _CELLS:
        return _CELLS[model]
    out: dict[str, torch.Tensor] = {}

    def keep(module, inputs) -> None:  # the layer's input, copied before an in-place ReLU gates it
        out.setdefault("a", inputs[0].clone())

    def keep_output(module, inputs, output) -> None:
        out.setdefault("a", output)

    # a ReLU keeps its input's grid: its input, not gated to zero, shows the whole field
    hook = (layer.register_forward_pre_hook(keep) if isinstance(layer, nn.ReLU)
            else layer.register_forward_hook(keep_output))
    try:
        with torch.inference_mode(False), torch.enable_grad():
            z = torch.randn(16, 1, size, size, generator=torch.Generator().manual_seed(0))
            z = z.to(next(model.parameters()).device).requires_grad_()
            model.features(z)
            a = out["a"]
            n = a.shape[-1]
            cells = (max(0, n // 2 - 1), min(n - 1, n // 2 + 1))  # inner cells: fields not cut by the border
            centres = []
            for idx in cells:
                g, = torch.autograd.grad(a[:, :, idx, idx].sum(), z, retain_graph=True)
                rows = torch.nonzero(g.abs().sum((0, 1, 3)) > 0).flatten()
                centres.append((float(rows.min()) + float(rows.max())) / 2)
    finally:
        hook.remove()
    step = (centres[1] - centres[0]) / max(1, cells[1] - cells[0]) if n > 1 else float(size)
    _CELLS[model] = (centres[0] - cells[0] * step, step, n)
    return _CELLS[model]


def place_cells(cam: torch.Tensor, first: float, step: float, size: int) -> torch.Tensor:
    """A (B, 1, n, n) grid of cells onto (B, 1, size, size) pixels, bilinear between cell centres at
    first + k * step (pixel indices); pixels beyond the outer centres take the outer cells' values."""
    n = cam.shape[-1]
    t = (torch.arange(size, dtype=cam.dtype) - first) / step  # each pixel's position in cell units
    g = 2 * t / max(1, n - 1) - 1
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1)[None].expand(cam.shape[0], size, size, 2)
    return F.grid_sample(cam, grid.to(cam.device), mode="bilinear", padding_mode="border", align_corners=True)


def _stn(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    out = model.stn_view(x) if hasattr(model, "stn_view") else None
    return out


def to_input_frame(values: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """A map (B, 1, H, W) over the STN-warped view, carried back onto the input: the view's pixel v shows the
    input at θ·v, so the input's pixel u takes the map's value at θ⁻¹·u (0 where the view does not reach)."""
    a, t = theta[:, :, :2], theta[:, :, 2:]
    inv = torch.linalg.inv(a)
    theta_inv = torch.cat([inv, -inv @ t], dim=2)
    grid = F.affine_grid(theta_inv, list(values.shape), align_corners=False)
    return F.grid_sample(values, grid, align_corners=False, padding_mode="zeros")


@register_explainer("gradcam", "Grad-CAM",
                    "Where the last convolution's class-relevant features are, carried back through the STN.")
def gradcam(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    """Grad-CAM (Selvaraju et al.) of the network's logit on its last feature conv, each cell placed over the
    middle of the pixels it sees (`cam_cells`). With flip averaging, the mean of the face's map and the mirrored face's map mirrored back (the
    logit adjustment shifts logits by constants and does not change the gradients; a temperature only scales)."""
    from captum.attr import LayerGradCam

    layer = cam_layer(model)
    network = getattr(model, "network", model)
    size = x.shape[-1]
    first, step, _ = cam_cells(model, layer, size)
    n = images_per_face(model)  # with flip averaging: the face, then the mirrored face
    maps = []
    with _Gradients(x) as xg:
        for k in range(n):
            inp = xg if k == 0 else xg.flip(-1)
            cam = LayerGradCam(network, layer).attribute(inp, target=target, relu_attributions=True)
            cam = place_cells(cam.detach(), first, step, size)  # each cell over the pixels it sees
            stn = _stn(model, inp.detach())
            if stn is not None:
                cam = to_input_frame(cam, stn[1])
            maps.append(cam.flip(-1) if k == 1 else cam)
    values = torch.stack(maps).mean(0)
    post = getattr(model, "posthoc", None)
    if post is not None and not model.training:
        values = values / post.temperature
    return Map("gradcam", _values(values), False, "class-weighted activation (ReLU)", n, n)


# --- facial regions ------------------------------------------------------------------------

# Where MTCNN puts the five landmarks on a FER2013 crop (48x48), the median over 283 of 300 training faces
# (seed 0) upscaled x4 and found by `faces.detect_faces`: used when a face has no landmarks of its own.
TYPICAL_LANDMARKS = np.array([[14.3, 19.3], [32.9, 18.8], [23.9, 29.1], [16.3, 38.7], [31.8, 38.2]])
REGIONS = ("eyes", "brows", "nose", "mouth", "rest")


def region_mask(landmarks: np.ndarray | None, size: int = 48) -> tuple[np.ndarray, bool]:
    """(size, size) int map of REGIONS indices from the five landmarks (crop pixels), and whether the face's
    own landmarks were used (False: TYPICAL_LANDMARKS, scaled to `size`). Ellipses in the frame of the eye line,
    so a tilted head gets tilted regions: eyes, brows above them, the mouth around its corners, the nose
    from between the eyes to its tip; everything else is 'rest'."""
    own = landmarks is not None and np.isfinite(landmarks).all() and np.asarray(landmarks).shape == (5, 2)
    pts = np.asarray(landmarks, dtype=float) if own else TYPICAL_LANDMARKS * size / 48
    le, re, nose, ml, mr = pts
    d = float(np.hypot(*(re - le)))
    if not own or d < 2:
        pts = TYPICAL_LANDMARKS * size / 48
        le, re, nose, ml, mr = pts
        d, own = float(np.hypot(*(re - le))), False
    u = (re - le) / d
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    pix = np.stack([xs, ys], -1)

    def ellipse(centre: np.ndarray, ra: float, rb: float) -> np.ndarray:
        rel = pix - centre
        return ((rel @ u) / ra) ** 2 + ((rel @ v) / rb) ** 2 <= 1

    eyes_mid = (le + re) / 2
    mouth_mid = (ml + mr) / 2
    mouth_half = max(float(np.hypot(*(mr - ml))) / 2, 0.2 * d)
    nose_len = max(float((nose - eyes_mid) @ v), 0.3 * d)
    shapes = {  # earlier regions win where two overlap
        "mouth": ellipse(mouth_mid + 0.05 * d * v, mouth_half + 0.2 * d, 0.3 * d),
        "eyes": ellipse(le, 0.3 * d, 0.2 * d) | ellipse(re, 0.3 * d, 0.2 * d),
        "brows": ellipse(le - 0.38 * d * v, 0.36 * d, 0.16 * d) | ellipse(re - 0.38 * d * v, 0.36 * d, 0.16 * d),
        "nose": ellipse(eyes_mid + 0.55 * nose_len * v, 0.22 * d, 0.55 * nose_len + 0.05 * d),
    }
    mask = np.full((size, size), REGIONS.index("rest"), dtype=np.int64)
    taken = np.zeros((size, size), dtype=bool)
    for name, inside in shapes.items():
        mask[inside & ~taken] = REGIONS.index(name)
        taken |= inside
    return mask, own


@register_explainer("regions", "Facial regions",
                    "Each facial region (eyes, brows, nose, mouth, rest) blurred away in turn: how much the class's "
                    "probability falls.")
def regions(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    """Captum FeatureAblation with a feature mask from the face's landmarks. A region is replaced by the same
    region of the face blurred (sigma `region_blur`), not by black: a black ellipse is itself a strong feature
    (over the mouth it reads as an open mouth — on the example photo hiding the mouth in black lowered *happy*
    by 0.02, blurring it by 0.69, while 8x8 black windows on the mouth lowered it by up to 0.85)."""
    from captum.attr import FeatureAblation
    from torchvision.transforms.functional import gaussian_blur

    mask, own = region_mask(ctx.landmarks, x.shape[-1])
    present = [r for r in range(len(REGIONS)) if (mask == r).any()]
    ids = np.full_like(mask, -1)
    for k, r in enumerate(present):
        ids[mask == r] = k  # Captum numbers features 0..n-1
    feature_mask = torch.from_numpy(ids).view(1, 1, *mask.shape).to(x.device)
    with torch.no_grad():
        blurred = gaussian_blur(x, kernel_size=2 * math.ceil(3 * ctx.region_blur) + 1, sigma=ctx.region_blur)
        attr = FeatureAblation(_probability(model)).attribute(
            x, baselines=blurred, target=target, feature_mask=feature_mask, perturbations_per_eval=len(present))
    values = _values(attr)
    found = {REGIONS[r]: float(values[mask == r][0]) for r in present}
    found = dict(sorted(found.items(), key=lambda kv: -abs(kv[1])))
    m = Map("regions", values, True, "probability (region blurred)", (len(present) + 1) * images_per_face(model), 0, regions=found)
    m.note = "" if own else "typical landmark positions (this face has none of its own)"
    return m


def region_sentence(m: Map, class_name: str) -> str:
    """The region that moved the prediction most, in words: 'blurring the mouth lowers happy by 0.69'."""
    if not m.regions:
        return ""
    name, value = next(iter(m.regions.items()))
    where = "everything but eyes, brows, nose and mouth" if name == "rest" else f"the {name}"
    return f"blurring {where} {'lowers' if value >= 0 else 'raises'} {class_name} by {abs(value):.2f}"


# --- the spatial transformer -----------------------------------------------------------------

@register_explainer("stn", "STN attention",
                    "The part of the input the spatial transformer samples: what the rest of the network sees.",
                    target_dependent=False)
def stn_attention(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    stn = _stn(model, x)
    if stn is None:
        raise ExplainerUnavailable("this model has no spatial transformer")
    theta = stn[1][:1]
    h, w = x.shape[-2:]
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=theta.dtype)
    sampled = corners @ theta[0, :, :2].T.cpu() + theta[0, :, 2].cpu()  # normalised input coordinates
    outline = ((sampled + 1) / 2 * torch.tensor([w, h], dtype=theta.dtype)).numpy()
    inside = to_input_frame(torch.ones(1, 1, h, w, dtype=theta.dtype, device=theta.device), theta)
    return Map("stn", _values(inside), False, "share of the pixel inside the sampled area", images_per_face(model), 0,
               outline=outline)


def turned_degrees(outline: np.ndarray) -> float:
    """How far the sampled quadrilateral's top edge is turned (degrees, counter-clockwise in the picture)."""
    (x0, y0), (x1, y1) = outline[0], outline[1]
    return math.degrees(math.atan2(-(y1 - y0), x1 - x0))

"""Occlusion maps of one face: the paper's map (flip and drop), Captum's Occlusion, the STN's view; and the
three occlusion methods of the registry, which share one set of occluded passes.

All functions take the model (a forward function returning logits) and a face tensor x of shape
(1, 1, H, W), pixels in [0, 1], and return tensors shaped (H, W).

Occlusion. A window x window square is set to `baseline` (default 0: black in pixel space; the network
normalises internally, so black reaches it as (0 - 0.5) / 0.5 = -1) and slid with `stride`. As in
Captum, windows never run over the edge: their top-left corners are 0, s, 2s, ... up to H - window,
so when (H - window) is not a multiple of s the last (H - window) % s rows/columns are covered by no
window and score 0. Both methods use the same windows.

- mode "flip" (the paper): each pixel counts the windows covering it whose occlusion changes the
  predicted label.
- mode "drop" (graded): each pixel averages, over the windows covering it, the fall of the target
  class's probability, p(x) - p(x occluded). This is exactly Captum's Occlusion on the softmax output.

Speed. The occluded copies go through the network in chunks of `batch_size`. For a DeepEmotion in eval
mode the first layer of the STN's localisation net is recomputed only around each window
(incremental.py); the network itself evaluates its first blocks in folded form (fold.py). Both are exact:
the per-window loop, Captum and the layer-by-layer network give the same numbers within float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deep_emotion.explain import incremental
from deep_emotion.explain.registry import Context, Map, _values, images_per_face, register_explainer
from deep_emotion.models.posthoc import flip_average

Forward = Callable[[torch.Tensor], torch.Tensor]
MODES = ("flip", "drop")


def check_window(size: int, window: int, stride: int) -> None:
    """Window 1..size, stride >= 1: anything else is a ValueError (not an assert: those vanish under -O)."""
    for name, v in (("window", window), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an integer, not {v!r}")
    if not 1 <= window <= size:
        raise ValueError(f"window must be between 1 and {size} pixels, not {window}")
    if stride < 1:
        raise ValueError(f"stride must be at least 1, not {stride}")


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Top-left coordinates along one axis: 0, stride, ..., ceil((size - window) / stride) * stride, the last
    window clipped at the edge (Captum's convention)."""
    check_window(size, window, stride)
    return list(range(0, size - window + stride, stride))


def n_windows(size: int, window: int, stride: int) -> int:
    """How many occluded copies (forward passes of one image) a map costs."""
    return len(window_positions(size, window, stride)) ** 2


def window_masks(size: int, window: int, stride: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, H, W) bool: the pixels each window covers, row-major over window positions."""
    pos = torch.tensor(window_positions(size, window, stride), device=device)
    r = torch.arange(size, device=device)
    cover = (r[None, :] >= pos[:, None]) & (r[None, :] < pos[:, None] + window)  # (P, H)
    return (cover[:, None, :, None] & cover[None, :, None, :]).reshape(-1, size, size)


def _check_face(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[:2] != (1, 1) or x.shape[2] != x.shape[3]:
        raise ValueError(f"expected one square grey face shaped (1, 1, H, H), got {tuple(x.shape)}")


@torch.no_grad()
def stn_view(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The STN-warped face (H, W) in [0, 1] and θ (2, 3); None for a model without a spatial transformer."""
    _check_face(x)
    out = model.stn_view(x)
    return None if out is None else (out[0][0, 0], out[1][0])


@torch.no_grad()
def occluded_probabilities(
    forward: Forward, x: torch.Tensor, window: int, stride: int, baseline: float = 0.0, batch_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax of the face and of every occluded copy, in chunks of `batch_size` copies per forward pass.
    Returns (p of the face (C,), p of the copies (K, C), window masks (K, H, W))."""
    _check_face(x)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    size = x.shape[-1]
    masks = window_masks(size, window, stride, x.device)
    fill = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if incremental.applies(forward, size, window):  # the paper network: recompute only what a window changes
        pos = torch.tensor(window_positions(size, window, stride), device=x.device)
        tops, lefts = pos.repeat_interleave(len(pos)), pos.repeat(len(pos))
        post = forward.posthoc
        mirrored = x.flip(-1)  # with flip averaging: copy k mirrored = the mirrored face, window mirrored
        face_stage1 = forward.stn.stage1(forward.normalize(x))
        mirrored_stage1 = forward.stn.stage1(forward.normalize(mirrored)) if post and post.tta_flip else None
        out = [forward(x).softmax(1)]
        for i in range(0, len(masks), batch_size):
            part = slice(i, i + batch_size)
            logits = incremental.occluded_logits(
                forward, x, masks[part], tops[part], lefts[part], window, baseline, face_stage1
            )
            if post is not None:
                if post.tta_flip:
                    logits = flip_average(
                        logits,
                        incremental.occluded_logits(
                            forward,
                            mirrored,
                            masks[part].flip(-1),
                            tops[part],
                            size - lefts[part] - window,
                            window,
                            baseline,
                            mirrored_stage1,
                        ),
                    )
                logits = post.adjust(logits)
            out.append(logits.softmax(1))
        p = torch.cat(out)
        return p[0], p[1:], masks
    # the face itself rides along as copy 0 (an empty mask): one forward pass fewer
    with_face = torch.cat([torch.zeros_like(masks[:1]), masks])
    out = []
    for i in range(0, len(with_face), batch_size):
        m = with_face[i : i + batch_size].unsqueeze(1)  # (k, 1, H, W)
        copies = torch.where(m, fill, x)
        out.append(forward(copies.contiguous(memory_format=torch.channels_last)).softmax(1))
    p = torch.cat(out)
    return p[0], p[1:], masks


def scores_to_map(scores: torch.Tensor, masks: torch.Tensor, mode: str) -> torch.Tensor:
    """Window scores (K,) onto pixels: summed ("flip") or averaged over covering windows ("drop")."""
    total = torch.einsum("k,khw->hw", scores.to(torch.float32), masks.to(torch.float32))
    if mode == "flip":
        return total
    count = masks.sum(0).to(torch.float32)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))  # uncovered (w < s): 0


def occlusion_map(
    forward: Forward,
    x: torch.Tensor,
    window: int = 8,
    stride: int = 2,
    mode: str = "flip",
    target: int | None = None,
    baseline: float = 0.0,
    batch_size: int = 128,
) -> torch.Tensor:
    """The paper's occlusion map (H, W), batched. Target: the predicted class unless given."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    p0, p, masks = occluded_probabilities(forward, x, window, stride, baseline, batch_size)
    target = int(p0.argmax()) if target is None else _check_target(target, p0.numel())
    scores = (p.argmax(1) != target).float() if mode == "flip" else p0[target] - p[:, target]
    return scores_to_map(scores, masks, mode)


def maps_from_probabilities(
    p0: torch.Tensor, p: torch.Tensor, masks: torch.Tensor, target: int | None = None
) -> dict[str, torch.Tensor]:
    """Both paper maps from one set of occluded passes (so the app pays for the passes once)."""
    target = int(p0.argmax()) if target is None else _check_target(target, p0.numel())
    return {
        "flip": scores_to_map((p.argmax(1) != target).float(), masks, "flip"),
        "drop": scores_to_map(p0[target] - p[:, target], masks, "drop"),
    }


def _check_target(target: int, n_classes: int) -> int:
    if not 0 <= int(target) < n_classes:
        raise ValueError(f"target must be a class index in 0..{n_classes - 1}, not {target}")
    return int(target)


@torch.no_grad()
def occlusion_map_loop(
    forward: Forward,
    x: torch.Tensor,
    window: int = 8,
    stride: int = 2,
    mode: str = "flip",
    target: int | None = None,
    baseline: float = 0.0,
) -> torch.Tensor:
    """The paper's procedure as written: one forward pass per window position. Reference for tests and benchmarks."""
    _check_face(x)
    size = x.shape[-1]
    positions = window_positions(size, window, stride)
    p0 = forward(x).softmax(1)[0]
    target = int(p0.argmax()) if target is None else _check_target(target, p0.numel())
    total = torch.zeros(size, size)
    count = torch.zeros(size, size)
    for top in positions:
        for left in positions:
            occluded = x.clone()
            occluded[..., top : top + window, left : left + window] = baseline
            p = forward(occluded).softmax(1)[0]
            score = float(p.argmax() != target) if mode == "flip" else float(p0[target] - p[target])
            total[top : top + window, left : left + window] += score
            count[top : top + window, left : left + window] += 1
    if mode == "flip":
        return total
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def captum_occlusion(
    forward: Forward,
    x: torch.Tensor,
    window: int = 8,
    stride: int = 2,
    target: int | None = None,
    baseline: float = 0.0,
    perturbations_per_eval: int = 1,
) -> torch.Tensor:
    """Captum's `Occlusion` on the softmax output with the same window, stride and baseline; (H, W)."""
    from captum.attr import Occlusion

    _check_face(x)
    check_window(x.shape[-1], window, stride)
    softmax = lambda inp: forward(inp).softmax(1)  # noqa: E731
    with torch.no_grad():
        p0 = softmax(x)[0]
    target = int(p0.argmax()) if target is None else _check_target(target, p0.numel())
    attr = Occlusion(softmax).attribute(
        x,
        sliding_window_shapes=(1, window, window),
        strides=(1, stride, stride),
        baselines=baseline,
        target=target,
        perturbations_per_eval=perturbations_per_eval,
    )
    return attr[0, 0].detach()


# --- the registered occlusion maps (one set of occluded passes for all three) ----------------

OCCLUSION_SHARED = "shares one set of occluded passes with the other occlusion maps"


def shared_passes(model: nn.Module, x: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p of the face, p of every occluded copy, window masks): computed once per face for all occlusion maps."""
    if ctx.occluded is None:
        with torch.no_grad():
            ctx.occluded = occluded_probabilities(model, x, ctx.window, ctx.stride, ctx.baseline, ctx.batch_size)
    return ctx.occluded


def _occlusion_map(model: nn.Module, x: torch.Tensor, target: int, ctx: Context, mode: str, method: str) -> Map:
    """The paper's map of `mode` ("flip" or "drop") from the shared occluded passes, as method `method`."""
    p0, p, masks = shared_passes(model, x, ctx)
    values = maps_from_probabilities(p0, p, masks, target)[mode]
    signed = mode == "drop"
    return Map(
        method,
        _values(values),
        signed,
        "probability" if signed else "label flips",
        len(masks) * images_per_face(model),
        0,
        note=OCCLUSION_SHARED,
    )


@register_explainer(
    "occlusion-flip",
    "Occlusion (paper, flip)",
    "How many sliding black windows over a pixel change the predicted label (the paper's map).",
)
def occlusion_flip(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    return _occlusion_map(model, x, target, ctx, "flip", "occlusion-flip")


@register_explainer(
    "occlusion-drop",
    "Occlusion (paper, drop)",
    "The average fall of the class's probability when a black window hides the pixel.",
)
def occlusion_drop(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    return _occlusion_map(model, x, target, ctx, "drop", "occlusion-drop")


@register_explainer(
    "captum-occlusion",
    "Captum Occlusion",
    "Captum's sliding-window occlusion on the softmax: equal to the paper's drop map by definition.",
)
def captum_occlusion_map(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    if not ctx.captum_itself:  # the drop map of the shared passes (tests check it against Captum's own run)
        return _occlusion_map(model, x, target, ctx, "drop", "captum-occlusion")
    values = captum_occlusion(
        model, x, ctx.window, ctx.stride, target, ctx.baseline, perturbations_per_eval=ctx.batch_size
    )
    n = n_windows(x.shape[-1], ctx.window, ctx.stride) + 1
    return Map("captum-occlusion", _values(values), True, "probability", n * images_per_face(model), 0)


# --- gradients (Captum) --------------------------------------------------------------------

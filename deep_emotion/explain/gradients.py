"""Captum's gradient maps as registered methods: Integrated Gradients, SmoothGrad, and Grad-CAM carried back
through the STN to the input (the inverse of θ). Signed maps are in units of the target's probability."""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from deep_emotion.explain.registry import (
    Context,
    ExplainerUnavailable,
    Map,
    _Gradients,
    _probability,
    _values,
    images_per_face,
    register_explainer,
)


@register_explainer(
    "integrated-gradients",
    "Integrated Gradients",
    "Gradients along the path from a black face to this one; they add up to the probability the face gains over black.",
)
def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    from captum.attr import IntegratedGradients

    with _Gradients(x) as xg:
        attr, delta = IntegratedGradients(_probability(model)).attribute(
            xg,
            baselines=ctx.baseline,
            target=target,
            n_steps=ctx.ig_steps,
            internal_batch_size=ctx.ig_steps,
            return_convergence_delta=True,
        )
    k = images_per_face(model)
    gap = float(delta.reshape(-1)[0])
    note = (
        f"the attributions add up to {float(attr.sum()):.3f}, {gap:+.3f} off the probability the face gains "
        f"over black ({ctx.ig_steps} steps; more steps close the gap)"
    )
    # forward: the path's points, then face and baseline for the completeness check; backward: the path's points
    return Map(
        "integrated-gradients", _values(attr), True, "probability", (ctx.ig_steps + 2) * k, ctx.ig_steps * k, note=note
    )


@register_explainer(
    "smoothgrad",
    "SmoothGrad",
    "How the class's probability reacts to each pixel (its gradient), averaged over noisy copies.",
)
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


_CAM_LAYERS: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


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


_CELLS: weakref.WeakKeyDictionary[nn.Module, tuple[float, float, int]] = weakref.WeakKeyDictionary()


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
    hook = (
        layer.register_forward_pre_hook(keep)
        if isinstance(layer, nn.ReLU)
        else layer.register_forward_hook(keep_output)
    )
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
                (g,) = torch.autograd.grad(a[:, :, idx, idx].sum(), z, retain_graph=True)
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


@register_explainer(
    "gradcam", "Grad-CAM", "Where the last convolution's class-relevant features are, carried back through the STN."
)
def gradcam(model: nn.Module, x: torch.Tensor, target: int, ctx: Context) -> Map:
    """Grad-CAM (Selvaraju et al.) of the network's logit on its last feature conv, each cell placed over the
    middle of the pixels it sees (`cam_cells`). With flip averaging, the mean of the face's map and the mirrored
    face's map mirrored back (the
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

"""Exact re-expressions of the paper network's first layers, for inference.

The paper's layers are kept as written in model.py (training, state_dict, readability); in eval mode the
network evaluates two of its blocks through these equivalent forms, which cost far less on a CPU:

1. `compose_convs`: the first two feature convs (1->10 and 10->10, 3x3, no nonlinearity between them)
   are one 5x5 conv 1->10: 250 instead of 990 multiply-adds per output pixel.
2. `phase_kernel` / `conv_pool`: a 'valid' conv followed by a 2x2 max-pool equals a conv over the
   space-to-depth input (`F.pixel_unshuffle(x, 2)`) that computes the four pooling phases as four
   groups of output channels, then a max over the groups: no full-resolution map is written, and
   oneDNN gets 4x the input channels (its 1-channel convs are slow).

Both are algebraic identities: the outputs differ from the layer-by-layer network only by float
rounding (~1e-6; tests/test_fold.py). Timings: benchmarks/occlusion.py --fold both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def compose_convs(first: nn.Conv2d, second: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the single conv equal to second(first(x)) (both stride 1, no padding, no groups)."""
    for c in (first, second):
        if c.stride != (1, 1) or c.padding != (0, 0) or c.dilation != (1, 1) or c.groups != 1:
            raise ValueError("compose_convs needs stride-1, unpadded, undilated, ungrouped convs")
    w1, w2 = first.weight, second.weight  # (M, C, k1, k1), (O, M, k2, k2)
    # correlating with w1 then w2 = correlating with the full convolution of the two kernels
    weight = F.conv_transpose2d(w2, w1)  # (O, C, k1 + k2 - 1, ...): sum_m w2[o, m] (*) w1[m, c]
    bias = second.bias + torch.einsum("omab,m->o", w2, first.bias)
    return weight, bias


def phase_kernel(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel (4*O, 4*C, k//2+1, k//2+1) and bias (4*O,) of the conv over `pixel_unshuffle(x, 2)` whose
    output channel (2a+b)*O + o is the 'valid' conv output at pixel (2i+a, 2j+b), channel o."""
    o, c, k, _ = weight.shape
    kp = k // 2 + 1
    full = weight.new_zeros(2, 2, o, c, 2, 2, kp, kp)  # (a, b, o, c, p, q, di, dj)
    for a in range(2):
        for b in range(2):
            for p in range(2):
                for q in range(2):
                    # input pixel (2(i+di)+p) meets kernel row u = 2di + p - a of output row 2i+a
                    us = [2 * di + p - a for di in range(kp)]
                    vs = [2 * dj + q - b for dj in range(kp)]
                    for di, u in enumerate(us):
                        for dj, v in enumerate(vs):
                            if 0 <= u < k and 0 <= v < k:
                                full[a, b, :, :, p, q, di, dj] = weight[:, :, u, v]
    # pixel_unshuffle orders channels as c*4 + p*2 + q
    return full.reshape(4 * o, c * 4, kp, kp), bias.repeat(4)


def conv_pool(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """max_pool2d(conv2d(x, w, b), 2) given (kernel, bias) = phase_kernel(w, b); x (B, C, H, W) with H, W even
    and an even conv output size (see `poolable`)."""
    y = F.conv2d(F.pixel_unshuffle(x, 2).contiguous(), kernel, bias)  # NCHW: the group max reads contiguous planes
    b, c4, h, w = y.shape
    return y.view(b, 4, c4 // 4, h, w).amax(1)


def poolable(size: int, k: int) -> bool:
    """Whether a (size x size) input, a 'valid' k x k conv and a 2x2 pool fit `conv_pool` exactly."""
    return size % 2 == 0 and (size - k + 1) % 2 == 0


def folds(module: nn.Module, x: torch.Tensor, k: int) -> bool:
    """Whether `module` (eval mode, its `fold` flag on) takes its k x k conv + pool of x through `conv_pool`."""
    return not module.training and module.fold and x.shape[-1] == x.shape[-2] and poolable(x.shape[-1], k)


class FoldCache:
    """Folded weights, rebuilt whenever a source parameter changes (in-place updates bump its version) or
    gradients are being recorded for a parameter (then they are rebuilt per call, so autograd flows to the real
    parameters; gradients with respect to the input alone, as attribution methods take them, use the cache)."""

    def __init__(self) -> None:
        self._cache: dict[bool, tuple[tuple, tuple[torch.Tensor, ...]]] = {}  # inference mode? -> (key, value)

    def get(self, params: list[torch.Tensor], build) -> tuple[torch.Tensor, ...]:
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return build()
        # one entry per inference mode: tensors made in it cannot be saved for a backward pass outside it
        mode = torch.is_inference_mode_enabled()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        if mode not in self._cache or self._cache[mode][0] != key:
            with torch.no_grad():
                self._cache[mode] = (key, build())
        return self._cache[mode][1]


class Composed(nn.Conv2d):
    """One conv standing for two stacked ones (`compose_convs`): a plain `nn.Conv2d` with the composed weights."""

    def __init__(self, first: nn.Conv2d, second: nn.Conv2d) -> None:
        weight, bias = compose_convs(first, second)
        o, c, k, _ = weight.shape
        super().__init__(c, o, kernel_size=k, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)


def relu_before_pool(layers: list[nn.Module]) -> list[nn.Module]:
    """`layers` with every MaxPool2d -> ReLU pair swapped (max and ReLU commute exactly), so that a graph runtime
    fuses each ReLU into the conv before it."""
    out = list(layers)
    for i in range(len(out) - 1):
        if isinstance(out[i], nn.MaxPool2d) and isinstance(out[i + 1], nn.ReLU):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


@torch.no_grad()
def graph_form(model: nn.Module) -> nn.Module:
    """`model` (in place, eval mode) with the layers an exported graph runs fastest (ONNX Runtime Web, where the
    space-to-depth form's transposes and group max cost more than they save): the folds of `set_fold` off, every
    ReLU ahead of its pool in the listed `nn.Sequential`s and, in the paper network, the first two feature convs
    as one composed 5x5 conv. The same function up to float rounding (tests/test_fold.py)."""
    if hasattr(model, "set_fold"):
        model.set_fold(False)
    stn = getattr(model, "stn", None)
    if stn is not None:
        stn.features = nn.Sequential(*relu_before_pool(list(stn.features)))
    config = getattr(model, "config", None)
    if config is not None and not getattr(config, "stages", ()) and not getattr(config, "batch_norm", True):
        f = model.features
        model.features = nn.Sequential(*relu_before_pool([Composed(f[0], f[1]), *list(f)[2:]]))
    return model.eval()

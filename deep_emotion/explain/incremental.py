"""Incremental inference for occluded copies of one face (the idea of Krypton, Nakandala et al., SIGMOD 2019).

An occluded copy differs from the face only inside its window, so the first conv + pool of the spatial
transformer's localisation net changes only where its receptive field meets the window: a (window/2 + 4)^2
patch of its 21x21 output. We compute that layer once for the face and, for each copy, only that patch
(from a small crop of the copy), then paste it in. Everything after it depends on the whole image (θ moves
the sampling grid of every pixel), so it runs on the full copies as usual.

The patch is the same arithmetic on the same numbers as the full layer, so the result equals
`model(copies)` (tests/test_explain.py checks it against the plain per-window loop).
Applies to a DeepEmotion in eval mode with its STN and fold on, on square inputs with even sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deep_emotion.models.fold import poolable
from deep_emotion.models.paper import DeepEmotion

STAGE1_KERNEL = 7  # the localisation net's first conv
BLOCKS = STAGE1_KERNEL // 2 + 1  # its kernel over 2x2 blocks (fold.phase_kernel): 4


def applies(forward, size: int, window: int) -> bool:
    """Whether `occluded_logits` can stand in for `forward` on (size x size) faces with this window."""
    return (
        isinstance(forward, DeepEmotion)
        and not forward.training
        and forward.stn is not None
        and forward.stn.fold
        and poolable(size, STAGE1_KERNEL)
        and 2 * patch_size(window) <= stage1_size(size)
    )


def stage1_size(size: int) -> int:
    return (size // 2) - BLOCKS + 1  # 21 at 48x48


def patch_size(window: int) -> int:
    """Stage-1 outputs (per side) a window can change, whatever the parity of its position."""
    return window // 2 + BLOCKS


@torch.no_grad()
def occluded_logits(
    model: DeepEmotion,
    x: torch.Tensor,
    masks: torch.Tensor,
    tops: torch.Tensor,
    lefts: torch.Tensor,
    window: int,
    baseline: float,
    face_stage1: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (K, C) of the occluded copies of the face x (1, 1, H, W): copy k has the window x window square
    at (tops[k], lefts[k]), i.e. masks[k] (H, W), set to `baseline` (pixel scale). Equal to `model(copies)`,
    cheaper in the localisation net's first layer. `face_stage1`: `model.stn.stage1` of the normalised face."""
    stn = model.stn
    kernel, bias = stn.folded_stage1()
    z_face = model.normalize(x)
    fill = model.normalize(torch.as_tensor(baseline, dtype=x.dtype, device=x.device))
    face = stn.stage1(z_face) if face_stage1 is None else face_stage1  # (1, 8, n, n)
    n, k, r, dev = face.shape[-1], len(masks), patch_size(window), x.device
    # the r x r outputs recomputed per copy: those the window can reach, slid inside the map at the edges
    # (an output the window does not reach comes out equal to the face's, so recomputing it is harmless)
    r0 = (torch.div(tops, 2, rounding_mode="floor") - (BLOCKS - 1)).clamp(0, n - r)
    c0 = (torch.div(lefts, 2, rounding_mode="floor") - (BLOCKS - 1)).clamp(0, n - r)
    span = 2 * (r + BLOCKS - 1)  # the pixels those outputs read: rows 2*r0 .. 2*r0 + span - 1
    crops = z_face[0, 0].unfold(0, span, 2).unfold(1, span, 2)[r0, c0]  # (K, span, span) of the face
    ar = torch.arange(span, device=dev)
    rows, cols = 2 * r0[:, None] + ar, 2 * c0[:, None] + ar  # (K, span) image coordinates of the crops
    in_r = (rows >= tops[:, None]) & (rows < tops[:, None] + window)
    in_c = (cols >= lefts[:, None]) & (cols < lefts[:, None] + window)
    crops = torch.where(in_r[:, :, None] & in_c[:, None, :], fill, crops)  # the window, as in the copy
    y = F.conv2d(F.pixel_unshuffle(crops.unsqueeze(1), 2), kernel, bias)  # (K, 4*8, r, r)
    patch = F.relu(y.view(k, 4, -1, r, r).amax(1))  # (K, 8, r, r)
    h1 = face.expand(k, -1, -1, -1).contiguous(memory_format=torch.channels_last)
    ar = torch.arange(r, device=dev)
    ri, ci = r0[:, None] + ar, c0[:, None] + ar  # (K, r)
    h1[torch.arange(k, device=dev)[:, None, None], :, ri[:, :, None], ci[:, None, :]] = patch.permute(0, 2, 3, 1)
    theta = stn.head(h1)
    z = torch.where(masks.unsqueeze(1), fill, z_face)  # the normalised copies, for the warp
    return model.classify(stn.warp(z, theta))

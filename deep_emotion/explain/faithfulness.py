"""Faithfulness of a map: deletion and insertion curves (hide / reveal pixels in the order the map ranks them and
follow the class's probability), their areas, and a random map as the baseline."""

from __future__ import annotations

import torch

from deep_emotion.explain.occlusion import Forward, _check_face

# --- faithfulness ---------------------------------------------------------------------------


def perturbed_images(
    x: torch.Tensor, importance: torch.Tensor, kind: str = "deletion", steps: int = 32, baseline: float = 0.0
) -> torch.Tensor:
    """(steps + 1, 1, H, W): deletion sets pixels to `baseline` in order of importance, 0, 1/steps, ... of them;
    insertion starts from the baseline image and restores them in that order. Ties in importance are broken in
    a random-but-fixed order (seeded), so flat maps behave like random ones."""
    _check_face(x)
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', not {kind!r}")
    n = x[0, 0].numel()
    g = torch.Generator().manual_seed(0)
    importance = torch.as_tensor(importance)
    jitter = torch.rand(n, generator=g) * 1e-9 * (importance.abs().max().item() + 1e-12)
    order = torch.argsort(importance.flatten().cpu().double() + jitter.double(), descending=True)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    counts = torch.tensor([round(k * n / steps) for k in range(steps + 1)])
    changed = (rank[None, :] < counts[:, None]).view(steps + 1, 1, *x.shape[-2:]).to(x.device)  # (S+1, 1, H, W)
    base = torch.full_like(x, baseline)
    return torch.where(changed, base, x) if kind == "deletion" else torch.where(changed, x, base)


@torch.no_grad()
def perturbation_curve(
    forward: Forward,
    x: torch.Tensor,
    importance: torch.Tensor,
    kind: str = "deletion",
    steps: int = 32,
    baseline: float = 0.0,
    target: int | None = None,
) -> tuple[torch.Tensor, float]:
    """Follows the target class's probability over `perturbed_images` (one batched pass); returns (curve, area
    under it on [0, 1]). Deletion: lower is better; insertion: higher is better."""
    images = perturbed_images(x, importance, kind, steps, baseline)
    p = forward(images.contiguous(memory_format=torch.channels_last)).softmax(1)
    if target is None:
        target = int(forward(x).argmax(1))
    curve = p[:, target].cpu()
    return curve, float(torch.trapezoid(curve, dx=1.0 / steps))


@torch.no_grad()
def faithfulness(
    forward: Forward,
    x: torch.Tensor,
    maps: dict[str, torch.Tensor],
    target: int,
    steps: int = 32,
    baseline: float = 0.0,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Deletion and insertion AUC (and insertion - deletion: higher is better) of every map for one face, all
    curves in chunks of `batch_size` images through the network."""
    images = torch.cat(
        [
            perturbed_images(x, torch.as_tensor(m), kind, steps, baseline)
            for m in maps.values()
            for kind in ("deletion", "insertion")
        ]
    )
    p = (
        torch.cat(
            [
                forward(images[i : i + batch_size].contiguous(memory_format=torch.channels_last)).softmax(1)
                for i in range(0, len(images), batch_size)
            ]
        )[:, target]
        .cpu()
        .view(len(maps), 2, steps + 1)
    )
    auc = torch.trapezoid(p, dx=1.0 / steps, dim=-1)
    return {
        name: {"deletion": float(a[0]), "insertion": float(a[1]), "difference": float(a[1] - a[0])}
        for name, a in zip(maps, auc)
    }


def random_map(size: int, seed: int = 0) -> torch.Tensor:
    """A random importance map: the faithfulness baseline."""
    return torch.rand(size, size, generator=torch.Generator().manual_seed(seed))

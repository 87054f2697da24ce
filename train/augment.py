"""Batched random affine augmentation: one affine_grid + grid_sample call per batch, on whatever device the
batch lives on, so no per-image Python or PIL work sits in the training loop."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    max_degrees: float = 10.0,
    max_shift: float = 2.0,
    max_scale: float = 0.1,
) -> torch.Tensor:
    """Rotates by up to +-max_degrees, shifts by up to +-max_shift pixels and scales by 1 +- max_scale.

    images: float [N, C, H, W] with background 0, which is also what the sampler fills in at the borders.
    """
    n, _, height, width = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=images.device) * (high - low) + low

    angle = uniform(-max_degrees, max_degrees) * (math.pi / 180)
    inv_scale = 1 / uniform(1 - max_scale, 1 + max_scale)
    # affine_grid maps output to input coordinates in [-1, 1]: a pixel is 2/size of that range.
    shift_x = uniform(-max_shift, max_shift) * (2 / width)
    shift_y = uniform(-max_shift, max_shift) * (2 / height)
    cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

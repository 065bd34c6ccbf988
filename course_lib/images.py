"""Pixels become numbers: a real photo shipped with matplotlib, procedurally drawn shapes, and patches.

Lessons 01 and 11. Images are ``(batch, channels, height, width)`` float tensors in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .validation import require_floating, require_rank, shape_str

SHAPE_CLASSES = ("square", "circle", "triangle", "cross")


def sample_photo(size: int = 64) -> torch.Tensor:
    """Grace Hopper's portrait, which ships inside matplotlib (no download): ``(3, size, size)`` in [0, 1]."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int (pixels per side), got {size!r}")
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        pixels = torch.tensor(mpimg.imread(file, format="jpg"), dtype=torch.float32) / 255.0  # (H, W, 3)
    image = pixels.permute(2, 0, 1)[None]  # (1, 3, H, W)
    side = min(image.shape[-2:])
    image = image[..., :side, :side]  # square crop from the top left: keeps the face
    return F.interpolate(image, size=(size, size), mode="area")[0].clamp(0, 1)


def make_shapes(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` grayscale images of one shape each, at a random place and scale, with noise.

    Returns ``(images (n, 1, size, size), labels (n,))``; label i names ``SHAPE_CLASSES[i]``.
    """
    if n < 1 or size < 8:
        raise ValueError(f"make_shapes needs n >= 1 and size >= 8, got n={n}, size={size}")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(SHAPE_CLASSES), (n,), generator=generator)
    radius = size * (0.18 + 0.14 * torch.rand(n, generator=generator))  # (n,)
    centre = size / 2 + (size / 2 - radius - 1)[:, None] * (2 * torch.rand(n, 2, generator=generator) - 1)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y = (coords[None, :, None] - centre[:, 0, None, None]) / radius[:, None, None]  # (n, size, 1)
    x = (coords[None, None, :] - centre[:, 1, None, None]) / radius[:, None, None]  # (n, 1, size)
    y, x = torch.broadcast_tensors(y, x)
    masks = torch.stack([
        (x.abs() <= 0.8) & (y.abs() <= 0.8),  # square
        x ** 2 + y ** 2 <= 1.0,  # circle
        (y <= 0.8) & (y >= -1.0 + 1.8 * x.abs()),  # triangle, apex up (rows grow downwards)
        ((x.abs() <= 0.3) | (y.abs() <= 0.3)) & (x.abs() <= 1) & (y.abs() <= 1),  # cross
    ], dim=1)  # (n, classes, size, size)
    images = masks[torch.arange(n), labels].float()
    images = (images + 0.15 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    return images[:, None], labels


def image_to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into square patches: ``(batch, channels, H, W)`` -> ``(batch, n_patches, channels * patch * patch)``.

    Patches go left to right, then top to bottom; each is flattened channel first. Equal to
    ``F.unfold(images, patch, stride=patch).transpose(1, 2)``.
    """
    require_rank(images, "images", 4, "(batch, channels, height, width)", max_rank=4)
    require_floating(images, "images")
    B, C, H, W = images.shape
    if not isinstance(patch, int) or patch < 1 or H % patch or W % patch:
        raise ValueError(f"patch={patch!r} must be a positive int dividing height and width: images are "
                         f"{shape_str(images.shape)}")
    grid = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, rows, p, cols, p)
    grid = grid.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return grid.reshape(B, (H // patch) * (W // patch), C * patch * patch)


def patches_to_image(patches: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """The inverse of ``image_to_patches``: ``(batch, n_patches, C*p*p)`` -> ``(batch, C, H, W)``."""
    require_rank(patches, "patches", 3, "(batch, n_patches, channels * patch * patch)", max_rank=3)
    B, N, F_ = patches.shape
    patch = math.isqrt(F_ // channels) if channels > 0 else 0
    if channels * patch * patch != F_ or N != (height // max(patch, 1)) * (width // max(patch, 1)):
        raise ValueError(f"patches {shape_str(patches.shape)} do not tile a ({channels}, {height}, {width}) image")
    grid = patches.reshape(B, height // patch, width // patch, channels, patch, patch)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(B, channels, height, width)

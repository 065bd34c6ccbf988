"""Pixels to work with: a real photo shipped with matplotlib, and procedurally drawn shapes.

Lessons 01 and 11 (cutting an image into patches is the vision transformer's first step:
``course_lib.models.vision``). Images are ``(batch, channels, height, width)`` float tensors in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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

"""A small vision transformer: an image becomes a list of patch vectors, and from there it is the same
transformer as for words. Lesson 11.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.validation import require_floating, require_rank, shape_str
from course_lib.models.block import TransformerStack, init_weights
from course_lib.models.classifier import POOLINGS, pool
from course_lib.models.positions import LearnedPositions


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


class VisionTransformer(nn.Module):
    """Images ``(batch, channels, size, size)`` -> class logits ``(batch, n_classes)``.

    Each ``patch x patch`` square becomes one token: ``(size / patch)^2`` tokens of ``d_model`` numbers.
    ``forward(images, return_attention=True)`` also returns per-layer weights ``(batch, heads, query, key)``.
    """

    def __init__(self, image_size: int, patch: int, channels: int, n_classes: int, d_model: int,
                 n_heads: int, n_layers: int, pooling: str = "cls", dropout: float = 0.0):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch={patch} must divide image_size={image_size}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.image_size, self.patch, self.channels, self.pooling = image_size, patch, channels, pooling
        self.n_patches = (image_size // patch) ** 2
        self.patch_embed = nn.Linear(channels * patch * patch, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.positions = LearnedPositions(self.n_patches + (pooling == "cls"), d_model)
        self.stack = TransformerStack(d_model, n_heads, n_layers, dropout=dropout)
        self.head = nn.Linear(d_model, n_classes)
        self.apply(init_weights)
        # A patch holds a few pixels only (4 for a 2 x 2 patch): with GPT-2's tiny weights (std 0.02) its vector
        # starts far smaller than the learned positions and training sat on a plateau for 100+ steps on the
        # digits (measured); PyTorch's default scale (uniform, bound 1/sqrt(pixels per patch)) starts at once.
        self.patch_embed.reset_parameters()

    def encode(self, images: torch.Tensor, return_attention: bool = False):
        """The pooled representation ``(batch, d_model)`` (and the attention if asked)."""
        require_rank(images, "images", 4, "(batch, channels, height, width)", max_rank=4)
        require_floating(images, "images")
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape (batch, {', '.join(map(str, expected))}), "
                             f"got {shape_str(images.shape)}")
        x = self.patch_embed(image_to_patches(images, self.patch))  # (B, n_patches, d_model)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        out = self.stack(self.positions(x), return_attention=return_attention)
        x, attention = out if return_attention else (out, None)
        pooled = pool(x, None, self.pooling)
        return (pooled, attention) if return_attention else pooled

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            pooled, attention = self.encode(images, return_attention=True)
            return self.head(pooled), attention
        return self.head(self.encode(images))

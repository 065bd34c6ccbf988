"""A small vision transformer: an image becomes a list of patch vectors, and from there it is the same
transformer as for words. Lesson 11.
"""

from __future__ import annotations

import torch
from torch import nn

from .validation import require_floating, require_rank, shape_str
from .block import TransformerStack, init_weights
from .classifier import POOLINGS, pool
from .images import image_to_patches
from .positions import LearnedPositions


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

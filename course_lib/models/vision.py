"""A small vision transformer: an image becomes a list of patch vectors, and from there it is the same
transformer as for words. Lesson 11.

images ``(batch, channels, size, size)`` -> class logits ``(batch, n_classes)``; ``ViTConfig`` holds the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.models.block import TransformerConfig, TransformerStack, init_weights
from course_lib.models.classifier import POOLINGS, pool
from course_lib.models.positions import LearnedPositions
from course_lib.validation import (config_from, require_choice, require_floating, require_int, require_rank,
                                   require_weights_dtype, settings_signature, shape_str)


@dataclass
class ViTConfig:
    """The settings of a ``VisionTransformer``, checked when made (a TypeError for the wrong kind of value, a
    ValueError for one out of range or not among the choices)."""

    image_size: int  # pixels per side of the square images
    patch: int  # pixels per side of a patch; it must divide image_size
    channels: int  # 1 for grey, 3 for colour
    n_classes: int
    d_model: int
    n_heads: int
    n_layers: int
    pooling: str = "cls"  # or "mean": the average of the patch vectors
    dropout: float = 0.0

    def __post_init__(self):
        self.image_size = require_int(self.image_size, "image_size", minimum=1)
        self.patch = require_int(self.patch, "patch", minimum=1)
        if self.image_size % self.patch:
            raise ValueError(f"patch={self.patch} must divide image_size={self.image_size}")
        self.channels = require_int(self.channels, "channels", minimum=1)
        self.n_classes = require_int(self.n_classes, "n_classes", minimum=1)
        blocks = self.transformer()  # the blocks' own checks, the same at every level
        self.d_model, self.n_heads, self.n_layers, self.dropout = (
            blocks.d_model, blocks.n_heads, blocks.n_layers, blocks.dropout)
        self.pooling = require_choice(self.pooling, "pooling", POOLINGS)

    def transformer(self) -> TransformerConfig:
        """The settings of the model's ``TransformerStack`` (its MLP 4 x d_model wide)."""
        return TransformerConfig(self.d_model, self.n_heads, self.n_layers, dropout=self.dropout)


def image_to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into square patches: ``(batch, channels, H, W)`` -> ``(batch, n_patches, channels * patch * patch)``.

    Patches go left to right, then top to bottom; each is flattened channel first. Equal to
    ``F.unfold(images, patch, stride=patch).transpose(1, 2)``.
    """
    require_rank(images, "images", 4, "(batch, channels, height, width)", max_rank=4)
    require_floating(images, "images")
    B, C, H, W = images.shape
    patch = require_int(patch, "patch", minimum=1)
    if H % patch or W % patch:
        raise ValueError(f"patch={patch} must divide the height and the width: images are {shape_str(images.shape)}")
    grid = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, rows, p, cols, p)
    grid = grid.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return grid.reshape(B, (H // patch) * (W // patch), C * patch * patch)


def patches_to_image(patches: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """The inverse of ``image_to_patches``: ``(batch, n_patches, C*p*p)`` -> ``(batch, C, H, W)``."""
    require_rank(patches, "patches", 3, "(batch, n_patches, channels * patch * patch)", max_rank=3)
    channels = require_int(channels, "channels", minimum=1)
    height, width = require_int(height, "height", minimum=1), require_int(width, "width", minimum=1)
    B, N, F_ = patches.shape
    patch = math.isqrt(F_ // channels)
    if (patch < 1 or channels * patch * patch != F_ or height % patch or width % patch
            or N != (height // patch) * (width // patch)):
        raise ValueError(f"patches {shape_str(patches.shape)} do not tile a ({channels}, {height}, {width}) image")
    grid = patches.reshape(B, height // patch, width // patch, channels, patch, patch)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(B, channels, height, width)


class VisionTransformer(nn.Module):
    """Images ``(batch, channels, size, size)`` -> class logits ``(batch, n_classes)``.

    ``VisionTransformer(config)`` or ``VisionTransformer(image_size, patch, channels, n_classes, d_model, n_heads,
    n_layers, pooling="cls", dropout=0.0)``: see ``ViTConfig``.

    Each ``patch x patch`` square becomes one token: ``(size / patch)^2`` tokens of ``d_model`` numbers.
    ``forward(images, return_attention=True)`` also returns per-layer weights ``(batch, heads, query, key)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(ViTConfig, args, kwargs)
        self.image_size, self.patch, self.channels, self.pooling = (config.image_size, config.patch, config.channels,
                                                                    config.pooling)
        self.n_patches = (config.image_size // config.patch) ** 2
        # The order below is the order of the random initial weights: keep it, or seeded runs change.
        self.patch_embed = nn.Linear(config.channels * config.patch * config.patch, config.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.d_model)) if config.pooling == "cls" else None
        self.positions = LearnedPositions(self.n_patches + (config.pooling == "cls"), config.d_model)
        self.stack = TransformerStack(config.transformer())
        self.head = nn.Linear(config.d_model, config.n_classes)
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
        require_weights_dtype(images, "images", self.patch_embed.weight.dtype)  # the dtypes only: no device sync
        x = self.patch_embed(image_to_patches(images, self.patch))  # (B, n_patches, d_model)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)  # (B, 1 + n_patches, d_model)
        # x is built here, right by construction, and there is no mask: the layers below need not check
        out = self.stack(self.positions(x, check=False), return_attention=return_attention, check=False)
        x, attention = out if return_attention else (out, None)
        pooled = pool(x, None, self.pooling)  # (B, d_model)
        return (pooled, attention) if return_attention else pooled

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            pooled, attention = self.encode(images, return_attention=True)
            return self.head(pooled), attention
        return self.head(self.encode(images))  # (B, n_classes)


VisionTransformer.__signature__ = settings_signature(ViTConfig)  # help() shows the settings, not *args

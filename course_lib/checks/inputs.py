"""Checks for lesson 01, inputs as numbers: token embeddings, one-hot vectors, image patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..images import image_to_patches as reference_patches
from ._core import Fail, Inputs, call, check, compare, non_contiguous, summary


@check("embed_tokens")
def check_embed_tokens(candidate) -> str:
    """``embed_tokens(ids (batch, time) long, table (vocab, d)) -> (batch, time, d)``: row ``ids[b, t]`` of the table."""
    rng = Inputs(1)
    cases = [
        ("batch 2, T 3, vocab 5, d 4", rng.randint(5, 2, 3), rng.randn(5, 4)),
        ("T = 1", rng.randint(6, 3, 1), rng.randn(6, 3)),
        ("batch of 1, repeated ids", torch.tensor([[2, 0, 2, 2]]), rng.randn(4, 4)),
        ("non-contiguous table", rng.randint(7, 2, 5), non_contiguous(rng.randn(7, 3))),
    ]
    for label, ids, table in cases:
        got = call(candidate, (ids, table), ("ids", "table"), label)
        expected = table[ids]
        mistakes = [
            ("looked up columns of the table (table.T[ids]) instead of rows", lambda: table.T[ids]),
            ("ids are off by one: id i picks row i, no shift", lambda: table[ids - 1]),
            ("returned one-hot vectors, not the table's rows: multiply them by the table",
             lambda: F.one_hot(ids, table.shape[0]).to(table.dtype)),
        ]

        def new_table(got):
            if _consistent_lookup(got, ids):
                return ("equal ids get equal vectors, but not the rows of `table`: did you create a new "
                        "nn.Embedding? Use the table you were given")
            return None

        compare(got, expected, label, mistakes, diagnose=new_table)
    return summary(len(cases), [c[0] for c in cases[1:]])


def _consistent_lookup(got: torch.Tensor, ids: torch.Tensor) -> bool:
    flat_ids, flat = ids.reshape(-1), got.detach().reshape(-1, got.shape[-1])
    return all(torch.allclose(flat[flat_ids == i], flat[flat_ids == i][:1].expand_as(flat[flat_ids == i]))
               for i in flat_ids.unique())


@check("one_hot")
def check_one_hot(candidate) -> str:
    """``one_hot(ids (batch, time) long, vocab_size) -> (batch, time, vocab_size)`` float32 of 0s and a 1."""
    rng = Inputs(2)
    cases = [
        ("batch 2, T 3, vocab 5", rng.randint(5, 2, 3), 5),
        ("T = 1", rng.randint(4, 2, 1), 4),
        ("batch of 1 with the last id", torch.tensor([[0, 6, 3]]), 7),
        ("ids that leave the last words of the vocabulary unused", torch.tensor([[0, 1], [1, 0]]), 5),
        ("non-contiguous ids", non_contiguous(rng.randint(6, 3, 4)), 6),
    ]
    for label, ids, vocab_size in cases:
        got = call(candidate, (ids, vocab_size), ("ids", "vocab_size"), label)
        expected = F.one_hot(ids, vocab_size).float()
        if isinstance(got, torch.Tensor) and got.dtype == torch.long and torch.equal(got, expected.long()):
            raise Fail(f"returns integers (dtype torch.int64) ({label}): one-hot vectors get multiplied by "
                       f"float weights, so convert with .float()")
        mistakes = [
            ("the vocabulary axis comes first: put it last, (batch, time, vocab_size)",
             lambda: F.one_hot(ids, vocab_size).float().permute(2, 0, 1)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), [c[0] for c in cases[1:]])


@check("image_to_patches")
def check_image_to_patches(candidate) -> str:
    """``image_to_patches(images (B, C, H, W), patch) -> (B, N, C*patch*patch)``, row-major patches, channel first."""
    rng = Inputs(3)
    cases = [
        ("1 image, 2 channels, 4x4, patch 2", rng.randn(1, 2, 4, 4), 2),
        ("batch 2, RGB, 4x6 (not square), patch 2", rng.randn(2, 3, 4, 6), 2),
        ("grayscale 6x4, patch 2", rng.randn(2, 1, 6, 4), 2),
        ("patch = the whole image (N = 1)", rng.randn(2, 3, 3, 3), 3),
        ("patch 1", rng.randn(1, 2, 2, 3), 1),
        ("non-contiguous images", non_contiguous(rng.randn(2, 3, 4, 4)), 2),
    ]
    for label, images, patch in cases:
        got = call(candidate, (images, patch), ("images", "patch"), label)
        expected = reference_patches(images, patch)
        B, C, H, W = images.shape
        rows, cols = H // patch, W // patch

        def grid(order):  # the patches for a given axis order of (B, rows, cols, C, p, p) pieces
            g = images.reshape(B, C, rows, patch, cols, patch).permute(*order)
            return g.reshape(B, rows * cols, C * patch * patch)

        mistakes = [
            ("each patch is flattened channel-last (pixel by pixel, channels interleaved): flatten channel "
             "first, all of channel 0, then channel 1, ...", lambda: grid((0, 2, 4, 3, 5, 1))),
            ("patches go column by column (top to bottom first): go left to right, then top to bottom",
             lambda: grid((0, 4, 2, 1, 3, 5))),
            ("the pixels inside each patch are transposed (column by column)", lambda: grid((0, 2, 4, 1, 5, 3))),
            ("reshaped without permuting: each 'patch' is a run of neighbouring values in memory, not a "
             "square; split H and W, then permute(0, 2, 4, 1, 3, 5)",
             lambda: images.reshape(B, rows * cols, C * patch * patch)),
            ("the patch axis and the feature axis are swapped: return (B, N, C*patch*patch)",
             lambda: expected.transpose(1, 2)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["non-square images", "grayscale", "N = 1", "patch 1", "non-contiguous images"],
                   "equals F.unfold(images, patch, stride=patch).transpose(1, 2)")

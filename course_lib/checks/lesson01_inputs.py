"""Checks for lesson 01, inputs as numbers: token embeddings, one-hot vectors, image patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.vision import image_to_patches as reference_patches
from .kit import Fail, Inputs, call, check, compare, non_contiguous, summary

LESSON = "01_inputs_as_numbers"


def _embed_tokens(ids, table):
    return table[ids]


def _one_hot(ids, vocab_size):
    return F.one_hot(ids, vocab_size).float()


@check("embed_tokens", lesson=LESSON, reference=_embed_tokens,
       builtins=("torch.nn.functional.embedding", "torch.embedding"), pieces="index the table with the ids")
def check_embed_tokens(candidate) -> str:
    """``embed_tokens(ids (batch, time) long, table (vocab, d)) -> (batch, time, d)``: row ``ids[b, t]`` of the table."""
    rng = Inputs()
    B, T, V, d = rng.int(2, 3), rng.int(3, 6), rng.int(3, 5), rng.int(2, 6)
    ids = rng.randint(V, B, T)
    ids[0, 1] = ids[0, 0]  # one id seen twice, at two positions
    V1, d1, B1 = rng.int(3, 8), rng.int(2, 6), rng.int(2, 4)
    T2, V2, d2 = rng.int(2, 6), rng.int(3, 6), rng.int(2, 5)
    repeated = rng.randint(V2, 1, T2)
    repeated[0, -1] = repeated[0, 0]
    B3, T3, V3, d3 = rng.int(2, 3), rng.int(2, 6), rng.int(4, 9), rng.int(2, 5)
    cases = [
        (f"batch {B}, T {T}, vocab {V}, d {d}", ids, rng.randn(V, d)),
        (f"T = 1, batch {B1}, vocab {V1}, d {d1}", rng.randint(V1, B1, 1), rng.randn(V1, d1)),
        (f"batch of 1, T {T2}, repeated ids", repeated, rng.randn(V2, d2)),
        (f"non-contiguous table, batch {B3}, T {T3}", rng.randint(V3, B3, T3), non_contiguous(rng.randn(V3, d3))),
    ]
    for label, ids, table in cases:
        got = call(candidate, (ids, table), ("ids", "table"), label)
        expected = table[ids]
        if isinstance(got, torch.Tensor) and not got.is_floating_point() and got.dtype != torch.bool \
                and got.shape == expected.shape:
            raise Fail(f"returns integers (dtype {got.dtype}) ({label}): the table's rows hold fractions, and "
                       f"converting them (.long(), .int()) cuts those off; return the rows as they are, float")
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
    return summary(len(cases), ["T = 1", "batch of 1, repeated ids", "non-contiguous table"])


def _consistent_lookup(got: torch.Tensor, ids: torch.Tensor) -> bool:
    flat_ids, flat = ids.reshape(-1), got.detach().reshape(-1, got.shape[-1])
    return all(torch.allclose(flat[flat_ids == i], flat[flat_ids == i][:1].expand_as(flat[flat_ids == i]))
               for i in flat_ids.unique())


@check("one_hot", lesson=LESSON, reference=_one_hot, builtins=("torch.nn.functional.one_hot",),
       pieces="compare the ids with torch.arange(vocab_size)")
def check_one_hot(candidate) -> str:
    """``one_hot(ids (batch, time) long, vocab_size) -> (batch, time, vocab_size)`` float32 of 0s and a 1."""
    rng = Inputs()
    B, T, V = rng.int(2, 4), rng.int(2, 6), rng.int(3, 9)
    B1, V1 = rng.int(2, 4), rng.int(2, 6)
    V2 = rng.int(4, 9)
    last = rng.randint(V2, 1, rng.int(2, 5))
    last[0, 1] = V2 - 1
    V3, B3, T3 = rng.int(3, 8), rng.int(2, 3), rng.int(2, 5)
    cases = [
        (f"batch {B}, T {T}, vocab {V}", rng.randint(V, B, T), V),
        (f"T = 1, batch {B1}, vocab {V1}", rng.randint(V1, B1, 1), V1),
        (f"batch of 1 with the last id, vocab {V2}", last, V2),
        ("ids that leave the last words of the vocabulary unused", torch.tensor([[0, 1], [1, 0]]), rng.int(3, 7)),
        (f"non-contiguous ids, batch {B3}, T {T3}, vocab {V3}", non_contiguous(rng.randint(V3, B3, T3)), V3),
    ]
    for label, ids, vocab_size in cases:
        got = call(candidate, (ids, vocab_size), ("ids", "vocab_size"), label)
        expected = F.one_hot(ids, vocab_size).float()
        if isinstance(got, torch.Tensor) and got.dtype == torch.long and got.device == expected.device \
                and got.shape == expected.shape and torch.equal(got, expected.long()):
            raise Fail(f"returns integers (dtype torch.int64) ({label}): one-hot vectors get multiplied by "
                       f"float weights, so convert with .float()")
        mistakes = [
            ("the vocabulary axis comes first: put it last, (batch, time, vocab_size)",
             lambda: F.one_hot(ids, vocab_size).float().permute(2, 0, 1)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["T = 1", "batch of 1 with the last id",
                                "ids that leave the last words of the vocabulary unused", "non-contiguous ids"])


@check("image_to_patches", lesson=LESSON, reference=reference_patches,
       builtins=("torch.nn.functional.unfold", "course_lib.models.vision.image_to_patches"),
       pieces="reshape, permute, reshape")
def check_image_to_patches(candidate) -> str:
    """``image_to_patches(images (B, C, H, W), patch) -> (B, N, C*patch*patch)``, row-major patches, channel first."""
    rng = Inputs()

    def picture(B, C, rows, cols, p):  # B images of rows x cols patches
        return rng.randn(B, C, rows * p, cols * p)

    B, C, p, rows = rng.int(1, 3), rng.int(2, 3), rng.int(2, 3), rng.int(2, 3)
    cols = rows + rng.int(1, 2)
    p2, p3 = rng.int(2, 3), rng.int(2, 4)
    cases = [
        (f"batch {B}, {C} channels, {rows}x{cols} patches of {p}", picture(B, C, rows, cols, p), p),
        (f"RGB, {cols}x{rows} patches of {p2} (not square)", picture(2, 3, cols, rows, p2), p2),
        (f"grayscale, patch {p}", picture(2, 1, cols, rows, p), p),
        (f"patch = the whole image (N = 1), patch {p3}", picture(2, 3, 1, 1, p3), p3),
        ("patch 1", picture(1, 2, rows, cols, 1), 1),
        (f"non-contiguous images, patch {p2}", non_contiguous(picture(2, 3, rows, rows, p2)), p2),
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

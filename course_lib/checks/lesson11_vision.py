"""Checks for lesson 11, the vision transformer: the class token goes first, one patch's attention as a grid,
and patches back into an image."""

from __future__ import annotations

import torch

from course_lib.models.vision import image_to_patches, patches_to_image
from .kit import Fail, Inputs, call, check, compare, non_contiguous, summary

LESSON = "11_vision_transformer"


# --- add_class_token ---------------------------------------------------------------------------------------------

def _add_class_token(patches, cls):
    return torch.cat([cls.expand(patches.shape[0], 1, -1), patches], dim=1)


@check("add_class_token", lesson=LESSON, reference=_add_class_token)
def check_add_class_token(candidate) -> str:
    """``add_class_token(patches (batch, n, d), cls (d,)) -> (batch, n + 1, d)``: the class token first, then the
    patches, the same class token in every image."""
    rng = Inputs()
    B, N, d = rng.int(2, 5), rng.int(3, 9), rng.int(2, 8)
    d2, N3, d3, B4, N4, d4 = rng.int(2, 6), rng.int(2, 6), rng.int(2, 6), rng.int(2, 4), rng.int(2, 6), rng.int(2, 5)
    cases = [
        (f"batch {B}, {N} patches, d {d}", rng.randn(B, N, d), rng.randn(d)),
        (f"batch of 1, 1 patch, d {d2}", rng.randn(1, 1, d2), rng.randn(d2)),
        (f"batch 3, {N3} patches, d {d3}, a class token with requires_grad", rng.randn(3, N3, d3),
         rng.randn(d3).requires_grad_()),
        (f"non-contiguous patches, batch {B4}, {N4} patches, d {d4}", non_contiguous(rng.randn(B4, N4, d4)),
         rng.randn(d4)),
    ]
    for label, patches, cls in cases:
        got = call(candidate, (patches, cls), ("patches", "cls"), label)
        B, N, d = patches.shape
        with torch.no_grad():
            expected = _add_class_token(patches, cls)
        mistakes = [
            ("puts the class token last: it goes first, at position 0, so the model reads it as out[:, 0]",
             lambda: torch.cat([patches, cls.expand(B, 1, -1)], dim=1)),
            ("adds the class token to every patch: it is one more vector in the list, (batch, n + 1, d)",
             lambda: patches + cls),
            ("joins it along the features (dim=-1): it is one more vector in the list, join along dim=1",
             lambda: torch.cat([cls.expand(B, N, -1), patches], dim=-1)),
            ("replaces the first patch by the class token: keep all n patches and add one vector",
             lambda: torch.cat([cls.expand(B, 1, -1), patches[:, 1:]], dim=1)),
            ("adds the class token to the first image only: every image gets it (expand it to (batch, 1, d))",
             lambda: torch.cat([torch.cat([cls[None, None], patches[:1]], 1),
                                torch.cat([torch.zeros(B - 1, 1, d), patches[1:]], 1)], 0)),
        ]
        compare(got.detach() if isinstance(got, torch.Tensor) else got, expected, label, mistakes,
                what="the tokens")
        if cls.requires_grad and not got.requires_grad:
            raise Fail(f"the class token is cut off from autograd ({label}): it is learned, so the gradient must "
                       f"reach it; avoid .detach(), .data and torch.tensor(...) on it")
    return summary(len(cases), ["batch of 1, 1 patch", "a class token that learns", "non-contiguous patches"],
                   "class token first, in every image, gradient reaching it")


# --- patch_attention_map -----------------------------------------------------------------------------------------

def _patch_attention_map(weights, row, col, rows, cols):
    query = 1 + row * cols + col  # token 0 is the class token
    return weights[:, query, 1:].mean(0).reshape(rows, cols)


def _attention(rng: Inputs, H: int, T: int) -> torch.Tensor:
    return torch.softmax(2 * rng.randn(H, T, T), dim=-1)


@check("patch_attention_map", lesson=LESSON, reference=_patch_attention_map)
def check_patch_attention_map(candidate) -> str:
    """``patch_attention_map(weights (heads, query, key), row, col, rows, cols) -> (rows, cols)``: the attention of
    the patch at (row, col), averaged over the heads, over the patches (not the class token), in image layout."""
    rng = Inputs()
    r1, c1 = rng.int(2, 4), rng.int(3, 5)  # rows != cols in the first case
    c1 = c1 if c1 != r1 else c1 + 1
    r3, c3 = rng.int(2, 4), rng.int(2, 4)
    cases = [
        (f"{r1} x {c1} patches, 4 heads", r1, c1, 4, (rng.int(0, r1 - 1), rng.int(1, c1 - 1))),
        ("4 x 4 patches, 1 head, the last patch", 4, 4, 1, (3, 3)),
        (f"{r3} x {c3} patches, 3 heads, the first patch", r3, c3, 3, (0, 0)),
        (f"non-contiguous weights, {c1} x {r1} patches, 2 heads", c1, r1, 2, (rng.int(1, c1 - 1), 0)),
    ]
    for label, rows, cols, H, (row, col) in cases:
        T = 1 + rows * cols
        weights = _attention(rng, H, T)
        if label.startswith("non-contiguous"):
            weights = non_contiguous(weights)
        label = f"{label}, patch (row {row}, col {col})"
        got = call(candidate, (weights, row, col, rows, cols), ("weights", "row", "col", "rows", "cols"), label)
        expected = _patch_attention_map(weights, row, col, rows, cols)
        query = 1 + row * cols + col
        mistakes = [
            ("forgot the class token: token 0 is the class token, so the patch at (row, col) is token "
             "1 + row * cols + col, and its keys are tokens 1 and after",
             lambda: weights[:, row * cols + col, :-1].mean(0).reshape(rows, cols)),
            ("reads the patch's column instead of its row: weights[:, query, key] is what the query gives each key",
             lambda: weights[:, 1:, query].mean(0).reshape(rows, cols)),
            ("numbered the patches column by column: the list goes left to right, then top to bottom, so the "
             "patch at (row, col) is number row * cols + col",
             lambda: weights[:, 1 + col * rows + row, 1:].mean(0).reshape(rows, cols)),
            ("laid the grid out column by column: reshape to (rows, cols), patches go left to right first",
             lambda: weights[:, query, 1:].mean(0).reshape(cols, rows).T),
            ("kept the class token's weight in the map: the keys of the map are the patches, 1 and after",
             lambda: weights[:, query, :-1].mean(0).reshape(rows, cols)),
            ("summed the heads: average them (.mean over the heads axis)",
             lambda: weights[:, query, 1:].sum(0).reshape(rows, cols)),
            ("took head 0 only: average over all the heads", lambda: weights[0, query, 1:].reshape(rows, cols)),
        ]
        compare(got, expected, label, mistakes, what="the map")
    return summary(len(cases), ["rows != cols", "1 head", "the first and the last patch", "non-contiguous weights"],
                   "the patch's row, mean over heads, in image layout")


# --- patches_to_image --------------------------------------------------------------------------------------------

def _patches_to_image(patches, channels, size):
    return patches_to_image(patches, channels, size, size)


@check("patches_to_image", lesson=LESSON, reference=_patches_to_image,
       builtins=("course_lib.models.vision.patches_to_image", "torch.nn.functional.fold"),
       pieces="reshape to (batch, rows, cols, channels, patch, patch), permute, reshape")
def check_patches_to_image(candidate) -> str:
    """``patches_to_image(patches (batch, n, channels * p * p), channels, size) -> (batch, channels, size, size)``:
    the inverse of ``image_to_patches``."""
    rng = Inputs()
    cases = []
    for label, B, C, size, p in [("batch 2, 3 channels, 8 x 8, patch 4", 2, 3, 8, 4),
                                 (f"batch 3, 1 channel, 8 x 8, patch 2", 3, 1, 8, 2),
                                 ("batch of 1, 2 channels, 6 x 6, patch 3", 1, 2, 6, 3),
                                 ("1 patch: the whole 4 x 4 image, 3 channels", 2, 3, 4, 4),
                                 ("batch 2, 3 channels, 12 x 12, patch 2 (non-contiguous patches)", 2, 3, 12, 2)]:
        images = rng.rand(B, C, size, size)
        patches = image_to_patches(images, p)
        if "non-contiguous" in label:
            patches = non_contiguous(patches)
        cases.append((label, images, patches, C, size, p))
    for label, images, patches, C, size, p in cases:
        got = call(candidate, (patches, C, size), ("patches", "channels", "size"), label)
        B, n = patches.shape[:2]
        k = size // p

        def arranged(order):
            return patches.reshape(B, k, k, C, p, p).permute(*order).reshape(B, C, size, size)

        mistakes = [
            ("a plain reshape scrambles the patches: each patch's pixels are together in the list, so reshape to "
             "(batch, rows, cols, channels, patch, patch) and permute the axes back to (batch, channels, rows, "
             "patch, cols, patch) before the last reshape",
             lambda: patches.reshape(B, C, size, size)),
            ("rows and columns of patches swapped (the image comes back transposed patch by patch): the list goes "
             "left to right, then top to bottom",
             lambda: arranged((0, 3, 2, 4, 1, 5))),
            ("the pixels inside each patch are transposed: permute to (batch, channels, rows, patch, cols, patch)",
             lambda: arranged((0, 3, 1, 5, 2, 4))),
            ("the channels are taken as the last axis of each patch: image_to_patches flattens channel first, "
             "(channels, patch, patch)",
             lambda: patches.reshape(B, k, k, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, size, size)),
        ]
        compare(got, images, label, mistakes, what="the image")
    return summary(len(cases), ["1, 2 and 3 channels", "1 patch", "batch of 1", "non-contiguous patches"],
                   "image_to_patches then yours gives back the image")

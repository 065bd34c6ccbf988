"""Checks for lesson 11, the vision transformer: an image's patches moved to new places, one patch's attention as
a grid, and patches back into an image."""

from __future__ import annotations

import torch

from course_lib.models.vision import image_to_patches, patches_to_image
from .kit import Fail, Inputs, call, check, compare, non_contiguous, summary

LESSON = "11_vision_transformer"


# --- shuffle_patches ---------------------------------------------------------------------------------------------

def _shuffle_patches(images, orders, patch):
    B, C, H, W = images.shape
    patches = image_to_patches(images, patch)  # (B, N, C * patch * patch), left to right, then top to bottom
    picked = torch.gather(patches, 1, orders[:, :, None].expand(-1, -1, patches.shape[2]))  # slot s <- orders[k, s]
    return patches_to_image(picked, C, H, W)


def _row_major_patches(images, patch):
    """Patches numbered top to bottom, then left to right (column by column): the wrong numbering."""
    B, C, H, W = images.shape
    grid = images.reshape(B, C, H // patch, patch, W // patch, patch).permute(0, 4, 2, 1, 3, 5)
    return grid.reshape(B, (H // patch) * (W // patch), C * patch * patch)


def _from_column_patches(patches, C, H, W, patch):
    B = patches.shape[0]
    grid = patches.reshape(B, W // patch, H // patch, C, patch, patch).permute(0, 3, 2, 4, 1, 5)
    return grid.reshape(B, C, H, W)


def _shuffle_mistakes(images, orders, patch):
    B, C, H, W = images.shape
    N = orders.shape[1]
    patches = image_to_patches(images, patch)
    inverse = torch.argsort(orders, dim=1)

    def gather(p, o):
        return torch.gather(p, 1, o[:, :, None].expand(-1, -1, p.shape[2]))

    def plain_reshape():
        flat = images.reshape(B, N, C * patch * patch)  # strips of pixels, not squares
        return gather(flat, orders).reshape(B, C, H, W)

    return [
        ("applies the order the other way round: slot s of the new image takes patch orders[k, s] of the old one "
         "(you put patch s into slot orders[k, s])", lambda: patches_to_image(gather(patches, inverse), C, H, W)),
        ("gives every image the first image's order: row k of orders is the order of image k",
         lambda: patches_to_image(gather(patches, orders[:1].expand(B, -1)), C, H, W)),
        ("numbers the patches column by column: they go left to right, then top to bottom, as image_to_patches "
         "numbers them", lambda: _from_column_patches(gather(_row_major_patches(images, patch), orders), C, H, W,
                                                       patch)),
        ("cuts the image with a plain reshape: that makes strips of pixels, not square patches; cut it as lesson 11 "
         "does (image_to_patches)", plain_reshape),
        ("mixes patches between images: image k keeps its own patches, only their places change",
         lambda: patches_to_image(gather(patches.roll(1, dims=0), orders), C, H, W)),
    ]


@check("shuffle_patches", lesson=LESSON, reference=_shuffle_patches,
       pieces="image_to_patches, an index by orders, patches_to_image (lesson 11) or your own reshapes")
def check_shuffle_patches(candidate) -> str:
    """``shuffle_patches(images (n, C, H, W), orders (n, N) long, patch) -> (n, C, H, W)``: image k with its
    ``patch x patch`` squares moved so that slot s holds the old square ``orders[k, s]``."""
    rng = Inputs()
    cases = []
    for label, B, C, H, W, patch in (
            ("8 x 8 digits, 2 x 2 patches", rng.int(3, 6), 1, 8, 8, 2),
            ("colour images, 3 channels", rng.int(2, 4), 3, 6, 6, 3),
            ("a wide image, 4 x 8 pixels", 2, 1, 4, 8, 2),
            ("a batch of 1", 1, 1, 8, 8, 4)):
        N = (H // patch) * (W // patch)
        images = rng.randn(B, C, H, W)
        orders = torch.stack([rng.permutation(N) for _ in range(B)])
        cases.append((f"{label}, batch {B}", images, orders, patch))
    B = rng.int(2, 4)
    cases.append((f"non-contiguous images, batch {B}", non_contiguous(rng.randn(B, 1, 8, 8)),
                  torch.stack([rng.permutation(16) for _ in range(B)]), 2))
    for label, images, orders, patch in cases:
        got = call(candidate, (images, orders, patch), ("images", "orders", "patch"), label)
        if isinstance(got, torch.Tensor) and got.dim() == 3:
            raise Fail(f"returns patches {tuple(got.shape)} ({label}): return images of the input's shape "
                       f"{tuple(images.shape)}, the patches put back in their new places")
        compare(got, _shuffle_patches(images, orders, patch), label, _shuffle_mistakes(images, orders, patch),
                what="the shuffled images")
    return summary(len(cases), ["digits", "3 channels", "a wide image", "a batch of 1", "non-contiguous images"],
                   "every patch in the slot its order says, in every image")


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
                                 ("batch 3, 1 channel, 8 x 8, patch 2", 3, 1, 8, 2),
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

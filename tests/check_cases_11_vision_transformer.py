"""Right and wrong learner answers to lesson 11's exercises (the vision transformer), for tests/test_checks.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import course_lib

# --- shuffle_patches ---------------------------------------------------------------------------------------------


def shuffle_with_course_lib(images, orders, patch):
    B, C, H, W = images.shape
    patches = course_lib.models.vision.image_to_patches(images, patch)
    moved = patches[torch.arange(B)[:, None], orders]  # (B, N, C*p*p): slot s <- patch orders[k, s]
    return course_lib.models.vision.patches_to_image(moved, C, H, W)


def shuffle_with_unfold(images, orders, patch):
    B, C, H, W = images.shape
    patches = F.unfold(images, patch, stride=patch)  # (B, C*p*p, N)
    moved = torch.gather(patches, 2, orders[:, None, :].expand(-1, patches.shape[1], -1))
    return F.fold(moved, (H, W), patch, stride=patch)


def shuffle_by_loops(images, orders, patch):
    out = torch.empty_like(images)
    cols = images.shape[3] // patch
    for k in range(images.shape[0]):
        for slot, source in enumerate(orders[k].tolist()):
            r, c = divmod(slot, cols)
            sr, sc = divmod(source, cols)
            out[k, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = \
                images[k, :, sr * patch:(sr + 1) * patch, sc * patch:(sc + 1) * patch]
    return out


def shuffle_inverse(images, orders, patch):
    return shuffle_with_course_lib(images, torch.argsort(orders, dim=1), patch)


def shuffle_first_order(images, orders, patch):
    return shuffle_with_course_lib(images, orders[:1].expand(len(orders), -1), patch)


def shuffle_plain_reshape(images, orders, patch):
    B, C, H, W = images.shape
    N = orders.shape[1]
    flat = images.reshape(B, N, C * patch * patch)
    return flat[torch.arange(B)[:, None], orders].reshape(B, C, H, W)


def shuffle_column_major(images, orders, patch):
    B, C, H, W = images.shape
    t = shuffle_with_course_lib(images.transpose(2, 3), orders, patch)
    return t.transpose(2, 3)


def shuffle_mixes_images(images, orders, patch):
    return shuffle_with_course_lib(images.roll(1, dims=0), orders, patch)


def shuffle_returns_patches(images, orders, patch):
    patches = course_lib.models.vision.image_to_patches(images, patch)
    return patches[torch.arange(len(images))[:, None], orders]


SHUFFLE_RIGHT = [
    ("course_lib's patches, advanced indexing", shuffle_with_course_lib),
    ("F.unfold, gather, F.fold", shuffle_with_unfold),
    ("loops over slots", shuffle_by_loops),
]
SHUFFLE_WRONG = [
    ("the order the other way round", shuffle_inverse, "applies the order the other way round"),
    ("the first image's order for all", shuffle_first_order, "gives every image the first image's order"),
    ("a plain reshape", shuffle_plain_reshape, "plain reshape"),
    ("patches numbered column by column", shuffle_column_major, "numbers the patches column by column"),
    ("patches from another image", shuffle_mixes_images, "mixes patches between images"),
    ("returns the patches", shuffle_returns_patches, "return images of the input's shape"),
    ("forgot return", lambda images, orders, patch: None, "forget `return`"),
]

# --- patch_attention_map --------------------------------------------------------------------------------------------


def map_index(weights, row, col, rows, cols):
    return weights[:, 1 + row * cols + col, 1:].mean(0).reshape(rows, cols)


def map_loop(weights, row, col, rows, cols):
    query = 1 + row * cols + col
    grid = torch.zeros(rows, cols)
    for r in range(rows):
        for c in range(cols):
            grid[r, c] = weights[:, query, 1 + r * cols + c].mean()
    return grid


def map_view(weights, row, col, rows, cols):
    heads_mean = weights.mean(dim=0)  # (query, key)
    return heads_mean[1:, 1:].reshape(rows, cols, rows, cols)[row, col]


PATCH_MAP_RIGHT = [("index then mean", map_index), ("loop over the grid", map_loop), ("4-D view", map_view)]
PATCH_MAP_WRONG = [
    ("no class token offset", lambda w, r, c, R, C: w[:, r * C + c, :-1].mean(0).reshape(R, C), "forgot the class token"),
    ("column instead of row", lambda w, r, c, R, C: w[:, 1:, 1 + r * C + c].mean(0).reshape(R, C), "column instead of its row"),
    ("column-major numbering", lambda w, r, c, R, C: w[:, 1 + c * R + r, 1:].mean(0).reshape(R, C), "column by column"),
    ("summed heads", lambda w, r, c, R, C: w[:, 1 + r * C + c, 1:].sum(0).reshape(R, C), "summed the heads"),
    ("head 0 only", lambda w, r, c, R, C: w[0, 1 + r * C + c, 1:].reshape(R, C), "head 0 only"),
    ("flat map", lambda w, r, c, R, C: w[:, 1 + r * C + c, 1:].mean(0), "shape"),
]

# --- patches_to_image -------------------------------------------------------------------------------------------------


def to_image_permute(patches, channels, size):
    B, n, F_ = patches.shape
    p = int(round((F_ // channels) ** 0.5))
    k = size // p
    return patches.reshape(B, k, k, channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, channels, size, size)


def to_image_fold(patches, channels, size):
    p = int(round((patches.shape[-1] // channels) ** 0.5))
    return F.fold(patches.transpose(1, 2), output_size=(size, size), kernel_size=p, stride=p)


def to_image_loop(patches, channels, size):
    B, n, F_ = patches.shape
    p = int(round((F_ // channels) ** 0.5))
    k = size // p
    image = torch.zeros(B, channels, size, size)
    for index in range(n):
        r, c = divmod(index, k)
        image[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = patches[:, index].reshape(B, channels, p, p)
    return image


def to_image_plain_reshape(patches, channels, size):
    return patches.reshape(patches.shape[0], channels, size, size)


def to_image_swapped(patches, channels, size):
    B, n, F_ = patches.shape
    p = int(round((F_ // channels) ** 0.5))
    k = size // p
    return patches.reshape(B, k, k, channels, p, p).permute(0, 3, 2, 4, 1, 5).reshape(B, channels, size, size)


def to_image_inner_transposed(patches, channels, size):
    B, n, F_ = patches.shape
    p = int(round((F_ // channels) ** 0.5))
    k = size // p
    return patches.reshape(B, k, k, channels, p, p).permute(0, 3, 1, 5, 2, 4).reshape(B, channels, size, size)


TO_IMAGE_RIGHT = [("reshape, permute, reshape", to_image_permute), ("F.fold", to_image_fold),
                  ("loop over patches", to_image_loop),
                  ("course_lib itself", lambda p, c, s: course_lib.models.vision.patches_to_image(p, c, s, s))]
TO_IMAGE_WRONG = [
    ("plain reshape", to_image_plain_reshape, "plain reshape scrambles"),
    ("rows and columns swapped", to_image_swapped, "rows and columns of patches swapped"),
    ("pixels inside each patch transposed", to_image_inner_transposed, "inside each patch are transposed"),
]

CASES = {
    "shuffle_patches": (SHUFFLE_RIGHT, SHUFFLE_WRONG),
    "patch_attention_map": (PATCH_MAP_RIGHT, PATCH_MAP_WRONG),
    "patches_to_image": (TO_IMAGE_RIGHT, TO_IMAGE_WRONG),
}

NAMED_MISTAKES = [
    ("shuffle_patches", shuffle_inverse, "applies the order the other way round"),
    ("shuffle_patches", shuffle_first_order, "gives every image the first image's order"),
    ("shuffle_patches", shuffle_plain_reshape, "plain reshape"),
    ("shuffle_patches", shuffle_column_major, "numbers the patches column by column"),
    ("shuffle_patches", shuffle_mixes_images, "mixes patches between images"),
    ("patch_attention_map", PATCH_MAP_WRONG[0][1], "forgot the class token"),
    ("patches_to_image", to_image_plain_reshape, "a plain reshape scrambles the patches"),
]

DELEGATING = {
    "patches_to_image": [("F.fold", to_image_fold, "F.fold"),
                         ("course_lib itself", TO_IMAGE_RIGHT[3][1], "course_lib's patches_to_image")],
}
HAND_BUILT = {"patches_to_image": "reshape, permute, reshape"}

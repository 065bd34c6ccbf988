"""Right and wrong learner answers to lesson 11's exercises (the vision transformer), for tests/test_checks.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import course_lib

# --- add_class_token ----------------------------------------------------------------------------------------------


def cls_expand(patches, cls):
    return torch.cat([cls.expand(patches.shape[0], 1, -1), patches], dim=1)


def cls_repeat(patches, cls):
    return torch.cat((cls.repeat(len(patches), 1, 1), patches), 1)


def cls_fill(patches, cls):
    B, N, D = patches.shape
    out = torch.empty(B, N + 1, D, dtype=patches.dtype)
    out[:, 0] = cls
    out[:, 1:] = patches
    return out


def cls_loop(patches, cls):
    return torch.stack([torch.cat([cls[None], image], dim=0) for image in patches])


ADD_CLS_RIGHT = [
    ("cat with expand", cls_expand),
    ("cat with repeat", cls_repeat),
    ("a new tensor filled", cls_fill),
    ("loop over images", cls_loop),
]
ADD_CLS_WRONG = [
    ("class token last", lambda p, c: torch.cat([p, c.expand(p.shape[0], 1, -1)], dim=1), "class token last"),
    ("added to every patch", lambda p, c: p + c, "adds the class token to every patch"),
    ("joined along the features", lambda p, c: torch.cat([c.expand(p.shape[0], p.shape[1], -1), p], dim=-1),
     "along the features"),
    ("replaces the first patch", lambda p, c: torch.cat([c.expand(p.shape[0], 1, -1), p[:, 1:]], dim=1),
     "replaces the first patch"),
    ("detached class token", lambda p, c: cls_expand(p, c.detach()), "cut off from autograd"),
    ("forgot return", lambda p, c: None, "forget `return`"),
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
    "add_class_token": (ADD_CLS_RIGHT, ADD_CLS_WRONG),
    "patch_attention_map": (PATCH_MAP_RIGHT, PATCH_MAP_WRONG),
    "patches_to_image": (TO_IMAGE_RIGHT, TO_IMAGE_WRONG),
}

NAMED_MISTAKES = [
    ("add_class_token", ADD_CLS_WRONG[0][1], "puts the class token last"),
    ("patch_attention_map", PATCH_MAP_WRONG[0][1], "forgot the class token"),
    ("patches_to_image", to_image_plain_reshape, "a plain reshape scrambles the patches"),
]

DELEGATING = {
    "patches_to_image": [("F.fold", to_image_fold, "F.fold"),
                         ("course_lib itself", TO_IMAGE_RIGHT[3][1], "course_lib's patches_to_image")],
}
HAND_BUILT = {"patches_to_image": "reshape, permute, reshape"}

"""Lesson 01's exercises (inputs as numbers): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import course_lib

# --- embed_tokens, one_hot ----------------------------------------------------------------------------------------


def embed_loop(ids, table):
    rows = [table[i] for i in ids.reshape(-1).tolist()]
    return torch.stack(rows).reshape(*ids.shape, table.shape[1])


EMBED_RIGHT = [
    ("index", lambda ids, table: table[ids]),
    ("F.embedding", lambda ids, table: F.embedding(ids, table)),
    ("one-hot matmul", lambda ids, table: F.one_hot(ids, table.shape[0]).to(table.dtype) @ table),
    ("index_select", lambda ids, table: table.index_select(0, ids.reshape(-1)).reshape(*ids.shape, -1)),
    ("loop", embed_loop),
]
EMBED_WRONG = [
    ("off by one", lambda ids, table: table[ids - 1], "off by one"),
    ("fresh nn.Embedding", lambda ids, table: nn.Embedding(*table.shape)(ids), "new nn.Embedding"),
    (".long() rows", lambda ids, table: table[ids].long(), "returns integers"),
    ("one-hot only", lambda ids, table: F.one_hot(ids, table.shape[0]).float(), "one-hot vectors"),
    ("columns", lambda ids, table: table.T[ids], ("IndexError", "columns of the table")),
    ("summed features", lambda ids, table: table[ids].sum(-1), "the output has shape ("),
]

ONE_HOT_RIGHT = [
    ("F.one_hot", lambda ids, V: F.one_hot(ids, V).float()),
    ("eye rows", lambda ids, V: torch.eye(V)[ids]),
    ("comparison", lambda ids, V: (ids[..., None] == torch.arange(V)).float()),
    ("scatter", lambda ids, V: torch.zeros(*ids.shape, V).scatter_(-1, ids[..., None], 1.0)),
]
ONE_HOT_WRONG = [
    ("long dtype", lambda ids, V: F.one_hot(ids, V), "returns integers"),
    ("vocab axis first", lambda ids, V: F.one_hot(ids, V).float().permute(2, 0, 1), "vocabulary axis comes first"),
    ("vocab size from the data", lambda ids, V: F.one_hot(ids).float(), "shape"),
]

# --- image_to_patches ---------------------------------------------------------------------------------------------


def patches_unfold(images, p):
    B, C = images.shape[:2]
    grid = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, rows, cols, p, p)
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)


def patches_loop(images, p):
    B, C, H, W = images.shape
    out = [images[:, :, r:r + p, c:c + p].reshape(B, -1) for r in range(0, H, p) for c in range(0, W, p)]
    return torch.stack(out, dim=1)


PATCHES_RIGHT = [
    ("F.unfold", lambda images, p: F.unfold(images, p, stride=p).transpose(1, 2)),
    ("Tensor.unfold", patches_unfold),
    ("loop", patches_loop),
    ("course_lib", course_lib.image_to_patches),
]
PATCHES_WRONG = [
    ("channel last", lambda im, p: im.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1)
     .reshape(im.shape[0], -1, im.shape[1] * p * p), "channel-last"),
    ("column major", lambda im, p: im.unfold(2, p, p).unfold(3, p, p).permute(0, 3, 2, 1, 4, 5)
     .reshape(im.shape[0], -1, im.shape[1] * p * p), "column by column"),
    ("reshape only", lambda im, p: im.reshape(im.shape[0], -1, im.shape[1] * p * p), "without permuting"),
    ("view after permute", lambda im, p: im.view(im.shape[0], im.shape[1], im.shape[2] // p, p, im.shape[3] // p, p)
     .permute(0, 2, 4, 1, 3, 5).view(im.shape[0], -1, im.shape[1] * p * p), ".reshape"),
    ("unfold not transposed", lambda im, p: F.unfold(im, p, stride=p), "swapped"),
]

CASES = {
    "embed_tokens": (EMBED_RIGHT, EMBED_WRONG),
    "one_hot": (ONE_HOT_RIGHT, ONE_HOT_WRONG),
    "image_to_patches": (PATCHES_RIGHT, PATCHES_WRONG),
}

DELEGATING = {
    "embed_tokens": [("F.embedding", lambda ids, table: F.embedding(ids, table), "F.embedding"),
                     ("nn.Embedding", lambda ids, table: nn.Embedding.from_pretrained(table)(ids), "F.embedding")],
    "one_hot": [("F.one_hot", lambda ids, V: F.one_hot(ids, V).float(), "F.one_hot")],
    "image_to_patches": [("F.unfold", PATCHES_RIGHT[0][1], "F.unfold"),
                         ("course_lib itself", course_lib.image_to_patches, "course_lib's image_to_patches")],
}
HAND_BUILT = {"embed_tokens": "index", "one_hot": "comparison", "image_to_patches": "loop"}

REPLAYABLE = ["embed_tokens", "one_hot", "image_to_patches"]

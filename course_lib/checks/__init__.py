"""Instant feedback on the course's exercises: ``check_<name>(your_function)`` for every exercise.

Each check runs your function on several seeded inputs, edge cases included (T = 1, a batch of 1,
non-contiguous tensors, a mask that lets through a single key, d_v ≠ d), and compares it with
course_lib's reference. It returns a ``CheckResult`` that shows as one line:

    ✓ causal_mask: True on and below the diagonal on 4 inputs, incl. T = 1, T = 2, T = 7
    ✗ scaled_dot_product_attention: scores not divided by √d (batch 2, T 3, d 4)

A check never raises: an unfinished exercise (``raise NotImplementedError``) reads "not implemented
yet", and any other error, a missing ``return``, a wrong shape or dtype, NaN, or a changed input is
explained in that one line.

``time_checks()`` returns how long each check takes on a right answer (``python -m course_lib bench``).
"""

from ._core import CheckResult
from .attention_by_hand import check_attend, check_attention_weights, check_softmax
from .inputs import check_embed_tokens, check_image_to_patches, check_one_hot
from .learning import check_cross_entropy, check_sgd_step, check_training_step
from .multi_head import check_merge_heads, check_multi_head_attention, check_split_heads
from .positions import check_add_positions, check_position_similarity, check_sinusoidal_positions
from .self_attention import check_causal_mask, check_is_permutation_equivariant, check_scaled_dot_product_attention
from .timing import REFERENCE_SOLUTIONS, time_checks

# The exercises of each lesson, in the order the exercise notebooks present them.
EXERCISES = {
    "01_inputs_as_numbers": ("embed_tokens", "one_hot", "image_to_patches"),
    "02_learning": ("cross_entropy", "sgd_step", "training_step"),
    "03_attention_by_hand": ("softmax", "attention_weights", "attend"),
    "04_self_attention": ("causal_mask", "scaled_dot_product_attention", "is_permutation_equivariant"),
    "05_multi_head_attention": ("split_heads", "merge_heads", "multi_head_attention"),
    "06_positions": ("sinusoidal_positions", "add_positions", "position_similarity"),
}

__all__ = [
    "CheckResult", "EXERCISES", "check_add_positions", "check_attend", "check_attention_weights",
    "check_causal_mask", "check_cross_entropy", "check_embed_tokens", "check_image_to_patches",
    "check_is_permutation_equivariant", "check_merge_heads", "check_multi_head_attention", "check_one_hot",
    "check_position_similarity", "check_scaled_dot_product_attention", "check_sgd_step",
    "check_sinusoidal_positions", "check_softmax", "check_split_heads", "check_training_step",
]

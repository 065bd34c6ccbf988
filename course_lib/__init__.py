"""course_lib: the small helper library the transformer course stands on.

Where things are:

    models/         the models you read and build, one file each: attention, positions, block,
                    language_model (TransformerLM), classifier, vision (VisionTransformer), recurrent (GRU)
    experiments/    what the lessons measure with them: vocab and images (inputs), training, grammar (sentences
                    with ground truth), evaluation, analysis and head_report (what heads learn), reference (the
                    course's trained model), speed, digits and probes, text, text_model, generation and
                    text_heads (lessons 13-14)
    widgets/        the attention explorer and playground
    plots           the course's figures
    checks/         the exercises' instant checks
    validation      the one policy for bad input: a TypeError for the wrong kind of value, a ValueError for a
                    value out of range, the same at every level
    threads         how many CPU threads PyTorch uses (below)
    tools/          the command line, ``python -m course_lib ...``: doctor, bench, record, exercises, nbgrader,
                    links. For you, contributors and instructors; nothing above imports it.

``import course_lib`` by itself imports nothing heavy and changes nothing: the names below (``course_lib.fit``,
``course_lib.TransformerLM``, ...) load when you first use them, so ``python -m course_lib doctor`` runs
even where PyTorch is missing, and says how to install it.

**One side effect, on purpose:** the first time you load a part of course_lib that computes with PyTorch
(``models``, ``experiments``, ``widgets``, ``plots``, ``checks``, or any name below), PyTorch is set to
**one CPU thread**, unless you chose a count (``COURSE_LIB_THREADS`` or ``OMP_NUM_THREADS`` in the
environment, or ``torch.set_num_threads`` afterwards). ``course_lib.threads`` says why, in one place.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Each name a lesson may use as ``course_lib.<name>``, and the module that defines it.
_NAMES = {
    "course_lib.models.attention": ("MultiHeadAttention", "causal_mask", "merge_heads", "padding_mask",
                                    "scaled_dot_product_attention", "split_heads"),
    "course_lib.models.block": ("TransformerBlock", "TransformerStack", "TransformerConfig"),
    "course_lib.models.classifier": ("TransformerClassifier", "ClassifierConfig"),
    "course_lib.models.language_model": ("TransformerLM", "LMConfig"),
    "course_lib.models.positions": ("LearnedPositions", "SinusoidalPositions", "sinusoidal_positions"),
    "course_lib.models.recurrent": ("GRULanguageModel", "GRUConfig"),
    "course_lib.models.vision": ("VisionTransformer", "ViTConfig", "image_to_patches", "patches_to_image"),
    "course_lib.experiments.grammar": ("AgreementGrammar", "Sentence", "agreement_corpus", "agreement_vocabulary"),
    "course_lib.experiments.images": ("make_shapes", "sample_photo"),
    "course_lib.experiments.training": ("fit", "pick_device", "seed_everything"),
    "course_lib.experiments.vocab": ("Vocabulary", "pad_batch", "tokenize"),
    "course_lib.threads": ("apply_thread_policy",),
}
_HOME = {name: module for module, names in _NAMES.items() for name in names}
_PARTS = ("checks", "experiments", "models", "plots", "threads", "validation", "widgets")  # tools: import them by name

__all__ = sorted(_HOME)


def __getattr__(name: str):
    """Load ``course_lib.<name>`` on first use (PEP 562): a name above, or one of the parts."""
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    elif name in _PARTS:
        value = importlib.import_module(f"course_lib.{name}")
    else:
        raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME) | set(_PARTS))

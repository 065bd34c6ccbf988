"""Change a model, retrain it, measure what changed: the experiments of the exercises that ask you to predict.

Each function takes the change you wrote, trains the course's small model with it and without it from the same
start (the same weights, the same batches), and returns plain numbers next to a baseline. What held for seeds
0-9 at 1, 2 and 4 threads is recorded by ``python -m course_lib record exercise-runs`` in
``course_lib/data/exercise_runs.json``; the ``*_THRESHOLDS`` are what every one of those runs met.

- ``residual_experiment(block_forward)`` (exercise 07-2): a 4-block language model whose blocks compute your
  ``block_forward(block, x, mask)`` instead of their own.
- ``reach_experiment(reach)`` (exercise 10-2): lesson 10's recall task with a causal mask and with a sliding
  window; your ``reach(mask, n_layers)`` says which of them can see the key at all.
- ``patch_shuffle_experiment(shuffle_patches)`` (exercise 11-1): lesson 11's ViT and MLP on digits whose patches
  your ``shuffle_patches(images, orders, patch)`` moved to a random order per image.
- ``unseen_digits_experiment(keep_digits)`` (exercise 12-1): the ViT trained on the digits your
  ``keep_digits(images, labels, digits)`` keeps of 0-4; how well its vectors tell 5-9 apart.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from course_lib.experiments.grammar import agreement_corpus, agreement_vocabulary, encode_sentences
from course_lib.experiments.training import fit, language_model_loss, random_batches, seed_everything
from course_lib.models.language_model import TransformerLM
from course_lib.validation import require_int

RECORDED_EXERCISE_RUNS = Path(__file__).resolve().parent.parent / "data" / "exercise_runs.json"


def _require_function(value, name: str, signature: str) -> Callable:
    if not callable(value):
        raise TypeError(f"{name} must be your function {signature}, got {type(value).__name__}")
    return value


# --- exercise 07-2: the block without its residuals --------------------------------------------------------------

# Lesson 07's model and training, as its section on LayerNorm trains it: 4 blocks of width 32, 100 steps.
RESIDUAL_SETTINGS = dict(d_model=32, n_heads=4, n_layers=4, max_len=32, steps=100, batch_size=16, lr=5e-3,
                         n_train=2000, n_test=200)
# What every recorded run met: with the block's own forward the test loss ends below `max_with`; with the
# residuals taken out it ends within `baseline_band` of the word-frequency baseline (27 of the 30 runs within
# 0.02; seed 9 learned a little, 0.10-0.13 below it), at least `min_gap` above the other.
RESIDUAL_THRESHOLDS = dict(max_with=2.6, baseline_band=0.15, min_gap=0.8)


def residual_holds(result: dict) -> bool:
    """Whether one ``residual_experiment`` result meets ``RESIDUAL_THRESHOLDS``."""
    t = RESIDUAL_THRESHOLDS
    return bool(result["with_residuals"] < t["max_with"] and abs(result["yours"] - result["baseline"]) < t["baseline_band"]
                and result["yours"] - result["with_residuals"] > t["min_gap"])


class _YourBlock(nn.Module):
    """A block whose forward pass is ``block_forward(block, x, mask)``: the block's own parameters, your code."""

    def __init__(self, block: nn.Module, block_forward: Callable):
        super().__init__()
        self.block = block
        self.block_forward = block_forward

    def forward(self, x, mask=None, return_attention=False, check=True):
        return self.block_forward(self.block, x, mask)


def frequency_baseline_loss(train_ids: torch.Tensor, test_ids: torch.Tensor, pad_id: int) -> float:
    """The test loss of predicting every next word from word frequencies alone (the training set's), ignoring
    the sentence: the loss a model reaches if it learns nothing from the words before."""
    targets = train_ids[:, 1:][train_ids[:, 1:] != pad_id].tolist()
    frequency = Counter(targets)
    test_targets = test_ids[:, 1:][test_ids[:, 1:] != pad_id].tolist()
    return -sum(math.log(frequency[w] / len(targets)) for w in test_targets) / len(test_targets)


def residual_experiment(block_forward: Callable, seed: int = 0) -> dict:
    """Train lesson 07's 4-block language model twice from the same start, 100 steps on the agreement grammar:
    once as built, once with every block computing ``block_forward(block, x, mask)``. Returns the test losses
    ``{"with_residuals", "yours", "baseline"}`` (nats per word) and ``holds`` (every threshold met, when yours
    is the block without residuals)."""
    _require_function(block_forward, "block_forward", "block_forward(block, x, mask=None)")
    seed = require_int(seed, "seed", minimum=0)
    s = RESIDUAL_SETTINGS
    vocab = agreement_vocabulary()
    train, test = agreement_corpus(s["n_train"], s["n_test"], seed=0)
    train_ids, _ = encode_sentences(train, vocab)
    test_ids, _ = encode_sentences(test, vocab)
    seed_everything(seed)
    built = TransformerLM(len(vocab), d_model=s["d_model"], n_heads=s["n_heads"], n_layers=s["n_layers"],
                          max_len=s["max_len"])
    yours = copy.deepcopy(built)  # the same starting weights
    yours.stack.blocks = nn.ModuleList(_YourBlock(block, block_forward) for block in yours.stack.blocks)
    losses = {}
    for name, model in (("with_residuals", built), ("yours", yours)):
        fit(model, random_batches(train_ids, batch_size=s["batch_size"], seed=seed), language_model_loss,
            steps=s["steps"], lr=s["lr"], progress=False)
        with torch.no_grad():
            losses[name] = language_model_loss(model, (test_ids,)).item()
    baseline = frequency_baseline_loss(train_ids, test_ids, vocab.pad_id)
    result = {**{k: round(v, 4) for k, v in losses.items()}, "baseline": round(baseline, 4)}
    return {"seed": seed, "threads": torch.get_num_threads(), **result, "holds": residual_holds(result)}


# --- exercise 10-2: how far a windowed transformer can see --------------------------------------------------------

# Lesson 10's recall task at 16 tokens: the key sits in positions 0-3, the question at position 15. Three models of
# width 32 with 4 heads, each trained for 300 steps of 64 sequences: the causal mask (every earlier position) and a
# window of 9 positions (itself and the 8 before it) with 1 and with 2 layers.
REACH_SETTINGS = dict(length=16, d_model=32, n_heads=4, steps=300, batch_size=64, lr=0.01, warmup=20, n_test=500,
                      test_seed=987654321,
                      models={"causal, 2 layers": ["causal", 2], "window 9, 1 layer": [9, 1],
                              "window 9, 2 layers": [9, 2]})
# What every recorded run met: the causal model, whose question reads every key directly, recalls at least
# `min_direct`; the 1-layer window, whose question cannot reach any key, at most `max_unreached` (a fixed guess
# scores about 1/8). The 2-layer window must relay the key through a middle position: no threshold, it learned in
# some runs and not in others (the record keeps its range).
REACH_THRESHOLDS = dict(min_direct=0.9, max_unreached=0.2)


def reach_holds(result: dict) -> bool:
    """Whether one ``reach_experiment`` result meets ``REACH_THRESHOLDS``."""
    t, models = REACH_THRESHOLDS, result["models"]
    return bool(models["causal, 2 layers"]["accuracy"] >= t["min_direct"]
                and models["window 9, 1 layer"]["accuracy"] <= t["max_unreached"])


def window_mask(T: int, window: int) -> torch.Tensor:
    """``(T, T)`` bool: position i may attend to positions i - window + 1 .. i (itself and the window - 1 before)."""
    i = torch.arange(T)
    behind = i[:, None] - i[None, :]  # (T, T): how far key j is behind query i
    return (behind >= 0) & (behind < window)


def experiment_mask(kind, T: int) -> torch.Tensor:
    """The mask of one of ``REACH_SETTINGS["models"]``: ``"causal"`` or a window size."""
    from course_lib.models.attention import causal_mask
    return causal_mask(T) if kind == "causal" else window_mask(T, kind)


def _reached_keys(reach: Callable, mask: torch.Tensor, n_layers: int) -> float:
    """The share of key positions (0 .. length // 4 - 1) that ``reach`` says the question (the last position)
    depends on after ``n_layers`` layers."""
    from course_lib.experiments.recall import KEY_ZONE
    T = mask.shape[0]
    got = torch.as_tensor(reach(mask.clone(), n_layers)).bool()
    if got.shape != (T, T):
        raise ValueError(f"reach(mask, n_layers) must return a ({T}, {T}) tensor, got shape {tuple(got.shape)}")
    return float(got[T - 1, : T // KEY_ZONE].float().mean())


def reach_experiment(reach: Callable, seed: int = 0) -> dict:
    """For each model of ``REACH_SETTINGS``: the share of key positions your ``reach(mask, n_layers)`` says the
    question can depend on (``"reached"``), and the held-out recall accuracy after training (``"accuracy"``).
    Returns ``{"models": {name: {"reached", "accuracy"}}, "fixed_guess", "holds"}``; ``holds``: the causal model
    recalled at least ``min_direct`` and the 1-layer window at most ``max_unreached``."""
    from course_lib.experiments.recall import (VOCAB_SIZE, recall_accuracy, recall_baselines, recall_batches,
                                               recall_loss, recall_task)
    _require_function(reach, "reach", "reach(mask, n_layers)")
    seed = require_int(seed, "seed", minimum=0)
    s = REACH_SETTINGS
    T = s["length"]
    test_ids, test_answers = recall_task(s["n_test"], T, seed=s["test_seed"])
    models = {}
    for name, (kind, n_layers) in s["models"].items():
        mask = experiment_mask(kind, T)
        reached = _reached_keys(reach, mask, n_layers)
        seed_everything(seed)
        model = TransformerLM(VOCAB_SIZE, d_model=s["d_model"], n_heads=s["n_heads"], n_layers=n_layers, max_len=T)
        model.attention_mask = lambda time, device=None, mask=mask: mask[:time, :time]
        fit(model, recall_batches(T, s["batch_size"], seed), recall_loss, steps=s["steps"], lr=s["lr"],
            warmup=s["warmup"], progress=False)
        accuracy = recall_accuracy(model, test_ids, test_answers)
        models[name] = {"reached": round(reached, 4), "accuracy": round(accuracy, 4)}
    result = {"models": models, "fixed_guess": round(recall_baselines(test_answers)["best_fixed_guess"], 4)}
    return {"seed": seed, "threads": torch.get_num_threads(), **result, "holds": reach_holds(result)}


# --- exercise 11-1: the patches of every image shuffled ------------------------------------------------------------

# Lesson 11's digits and models, trained for 300 steps (half of lesson 11's 600, so that the four runs fit in
# about half a minute on one thread): the ViT and the MLP on the digits as they are, and on the digits with the
# 2 x 2 patches of every image moved to a random order of their own (a new order per image, drawn from the seed).
PATCH_SHUFFLE_SETTINGS = dict(steps=300, patch=2, split_seed=0, order_seed=1000)
# What every recorded run met: shuffled, the ViT keeps at least `min_vit_shuffled`, the MLP at most
# `max_mlp_shuffled` (guessing the commonest digit: 0.10), the ViT at least `min_gap` above the MLP; the MLP on the
# digits as they are at least `min_mlp_as_they_are`. The ViT as they are gets no threshold: after only 300 steps it
# reached anything from 0.67 to 0.92 (lesson 11's 600 steps do better).
PATCH_SHUFFLE_THRESHOLDS = dict(min_vit_shuffled=0.35, max_mlp_shuffled=0.2, min_gap=0.2, min_mlp_as_they_are=0.9)


def patch_shuffle_holds(result: dict) -> bool:
    """Whether one ``patch_shuffle_experiment`` result meets ``PATCH_SHUFFLE_THRESHOLDS``."""
    t, vit, mlp = PATCH_SHUFFLE_THRESHOLDS, result["vit"], result["mlp"]
    return bool(vit["shuffled"] >= t["min_vit_shuffled"] and mlp["shuffled"] <= t["max_mlp_shuffled"]
                and vit["shuffled"] - mlp["shuffled"] >= t["min_gap"] and mlp["as_they_are"] >= t["min_mlp_as_they_are"])


def random_patch_orders(n: int, n_patches: int, seed: int) -> torch.Tensor:
    """``(n, n_patches)`` long: a random order of the patches for each of ``n`` images, drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.argsort(torch.rand(n, n_patches, generator=generator), dim=1)


def patch_shuffle_experiment(shuffle_patches: Callable, seed: int = 0) -> dict:
    """Train lesson 11's ViT and MLP on the digits, and again on the digits with every image's patches shuffled by
    your ``shuffle_patches(images, orders, patch)`` (a random order per image). Returns the held-out accuracies
    ``{"vit": {"as_they_are", "shuffled"}, "mlp": {...}}``, ``"chance"`` and ``holds``."""
    from course_lib.experiments.digits import DigitSplit, accuracy, digit_mlp, digit_vit, load_digit_split, train_classifier
    _require_function(shuffle_patches, "shuffle_patches", "shuffle_patches(images, orders, patch)")
    seed = require_int(seed, "seed", minimum=0)
    s = PATCH_SHUFFLE_SETTINGS
    split = load_digit_split(seed=s["split_seed"])
    n_patches = (split.train_images.shape[-1] // s["patch"]) ** 2
    shuffled = []
    for offset, images in enumerate((split.train_images, split.test_images)):
        orders = random_patch_orders(len(images), n_patches, s["order_seed"] + 2 * seed + offset)
        moved = torch.as_tensor(shuffle_patches(images.clone(), orders, s["patch"]))
        if moved.shape != images.shape:
            raise ValueError(f"shuffle_patches must return images of shape {tuple(images.shape)}, got "
                             f"{tuple(moved.shape)}")
        shuffled.append(moved.float())
    versions = {"as_they_are": split,
                "shuffled": DigitSplit(shuffled[0], split.train_labels, shuffled[1], split.test_labels)}
    result = {}
    for name, make in (("vit", digit_vit), ("mlp", digit_mlp)):
        result[name] = {}
        for version, data in versions.items():
            model = make(seed)
            train_classifier(model, data, seed=seed, progress=False, steps=s["steps"])
            result[name][version] = round(accuracy(model, data.test_images, data.test_labels), 4)
    result["chance"] = round(float(torch.bincount(split.test_labels).max()) / len(split.test_labels), 4)
    return {"seed": seed, "threads": torch.get_num_threads(), **result, "holds": patch_shuffle_holds(result)}


# --- exercise 12-1: vectors for digits the model never trained on --------------------------------------------------

# Lesson 11's ViT trained for 300 steps on the training digits 0-4 only, and on all ten; then frozen. Its pooled
# vectors (32 numbers) of the digits 5-9 are probed (lesson 12's linear probe), against the untrained network's
# vectors and the 64 pixels themselves.
UNSEEN_DIGITS_SETTINGS = dict(steps=300, split_seed=0, trained_on=[0, 1, 2, 3, 4], probed=[5, 6, 7, 8, 9])
# What every recorded run met: trained on all ten, the vectors tell 5-9 apart at least `min_all`; trained on 0-4
# only, at least `min_drop` less, and below the pixels.
UNSEEN_DIGITS_THRESHOLDS = dict(min_all=0.8, min_drop=0.1)


def unseen_digits_holds(result: dict) -> bool:
    """Whether one ``unseen_digits_experiment`` result meets ``UNSEEN_DIGITS_THRESHOLDS``."""
    t = UNSEEN_DIGITS_THRESHOLDS
    return bool(result["trained_on_all"] >= t["min_all"]
                and result["trained_on_all"] - result["trained_on_0_to_4"] >= t["min_drop"]
                and result["trained_on_0_to_4"] < result["pixels"])


def unseen_digits_experiment(keep_digits: Callable, seed: int = 0) -> dict:
    """Train lesson 11's ViT on the training digits your ``keep_digits(images, labels, digits)`` keeps of 0-4, and
    on all of them; probe each frozen model's pooled vectors of the digits 5-9 (fit on the training split, scored
    on the test split), beside the untrained network's vectors and the pixels. Returns the probe accuracies
    ``{"trained_on_0_to_4", "trained_on_all", "untrained", "pixels"}``, ``"kept"`` (training images kept) and
    ``holds``."""
    from course_lib.experiments.digits import DigitSplit, digit_vit, load_digit_split, train_classifier
    from course_lib.experiments.probes import probe_accuracy
    _require_function(keep_digits, "keep_digits", "keep_digits(images, labels, digits)")
    seed = require_int(seed, "seed", minimum=0)
    s = UNSEEN_DIGITS_SETTINGS
    split = load_digit_split(seed=s["split_seed"])
    got = keep_digits(split.train_images.clone(), split.train_labels.clone(), list(s["trained_on"]))
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise TypeError("keep_digits must return the pair (images, labels)")
    images, labels = (torch.as_tensor(x) for x in got)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"keep_digits returned {len(images)} images and {len(labels)} labels")
    half = DigitSplit(images.float(), labels.long(), split.test_images, split.test_labels)
    probed = torch.tensor(s["probed"])
    train_rows, test_rows = torch.isin(split.train_labels, probed), torch.isin(split.test_labels, probed)
    train_y, test_y = split.train_labels[train_rows].numpy(), split.test_labels[test_rows].numpy()

    def probe(model) -> float:
        model.eval()
        with torch.no_grad():
            a, b = model.encode(split.train_images[train_rows]), model.encode(split.test_images[test_rows])
        return round(probe_accuracy(a.numpy(), train_y, b.numpy(), test_y), 4)

    result = {}
    for name, data in (("trained_on_0_to_4", half), ("trained_on_all", split)):
        model = digit_vit(seed)
        train_classifier(model, data, seed=seed, progress=False, steps=s["steps"])
        result[name] = probe(model)
    result["untrained"] = probe(digit_vit(seed))
    pixels = round(probe_accuracy(split.train_images[train_rows].flatten(1).numpy(), train_y,
                                  split.test_images[test_rows].flatten(1).numpy(), test_y), 4)
    result["pixels"] = pixels
    result["kept"] = len(images)
    return {"seed": seed, "threads": torch.get_num_threads(), **result, "holds": unseen_digits_holds(result)}


# --- the record ---------------------------------------------------------------------------------------------------

EXERCISE_RUN_SETTINGS = {"residuals": RESIDUAL_SETTINGS, "reach": REACH_SETTINGS,
                         "patch_shuffle": PATCH_SHUFFLE_SETTINGS, "unseen_digits": UNSEEN_DIGITS_SETTINGS}
EXERCISE_RUN_THRESHOLDS = {"residuals": RESIDUAL_THRESHOLDS, "reach": REACH_THRESHOLDS,
                           "patch_shuffle": PATCH_SHUFFLE_THRESHOLDS, "unseen_digits": UNSEEN_DIGITS_THRESHOLDS}


def recorded_exercise_runs(path: Path | None = None) -> list[dict]:
    """The recorded runs (``course_lib.tools.record.exercise_runs`` for seeds 0-9 at 1, 2 and 4 threads); a ValueError if the record was
    made with other settings or thresholds."""
    from course_lib.experiments.records import recorded_runs
    return recorded_runs(RECORDED_EXERCISE_RUNS if path is None else path, EXERCISE_RUN_SETTINGS,
                         EXERCISE_RUN_THRESHOLDS)


def recorded_run(seed: int, threads: int, path: Path | None = None) -> dict | None:
    """The recorded run of ``seed`` at ``threads`` threads, or None when the record has none."""
    return next((r for r in recorded_exercise_runs(path) if r["seed"] == seed and r["threads"] == threads), None)


def agrees_with_record(experiment: str, run: dict, path: Path | None = None) -> bool:
    """Whether ``run`` (one experiment's result, e.g. ``"residuals"``) equals the record's run of the same seed at the
    same thread count; True when the record has no such run (another thread count). A notebook that prints this
    fails its test when the record is stale."""
    recorded = recorded_run(run["seed"], run["threads"], path)
    if recorded is None:
        return True
    return {k: v for k, v in run.items() if k not in ("seed", "threads")} == recorded[experiment]

"""Real pixels, offline: scikit-learn's handwritten digits, and the small models lessons 11 and 12 train on them.

scikit-learn ships 1,797 grayscale digits of 8 x 8 pixels inside its wheel (``load_digits``: no download).
``load_digit_split()`` gives them as ``(n, 1, 8, 8)`` float tensors in [0, 1] with a held-out test split fixed
by its seed. ``train_digit_vit()`` trains the lesson's small vision transformer; ``digit_mlp`` and
``digit_cnn`` are the baselines beside it, trained the same way with ``train_classifier``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.experiments import cache as _cache
from course_lib.experiments.training import TrainingHistory, fit, random_batches
from course_lib.validation import require_int, require_number, shape_str
from course_lib.models.vision import VisionTransformer

IMAGE_SIZE = 8
N_CLASSES = 10
# The lesson's vision transformer: 2 x 2 patches, so an 8 x 8 digit is a list of 16 patch vectors (4 x 4 grid)
# plus the class token; 2 blocks of 4 heads, 32 numbers per vector.
DIGIT_VIT = dict(image_size=IMAGE_SIZE, patch=2, channels=1, n_classes=N_CLASSES, d_model=32, n_heads=4, n_layers=2)
# How every digit model trains (AdamW through course_lib's fit): batches of 64 images, warm-up, cosine decay.
TRAINING = dict(steps=600, batch_size=64, lr=5e-3, warmup=40, weight_decay=0.05)


@dataclass(frozen=True)
class DigitSplit:
    """Training and held-out test digits: images ``(n, 1, 8, 8)`` in [0, 1], labels ``(n,)`` (0-9)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def __repr__(self) -> str:
        return (f"DigitSplit(train={len(self.train_labels)} images, test={len(self.test_labels)} images, "
                f"each {shape_str(self.train_images.shape[1:])})")

    def flat(self) -> tuple:
        """The same split as NumPy rows of 64 pixels, for scikit-learn: ``(train_x, train_y, test_x, test_y)``."""
        return (self.train_images.flatten(1).numpy(), self.train_labels.numpy(),
                self.test_images.flatten(1).numpy(), self.test_labels.numpy())


def load_digit_split(test_fraction: float = 0.25, seed: int = 0) -> DigitSplit:
    """scikit-learn's 1,797 digits, split into training and test images; each digit keeps its share in both
    (stratified). The same ``seed`` gives the same split on every machine."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    test_fraction = require_number(test_fraction, "test_fraction", above=0, below=1)
    seed = require_int(seed, "seed", minimum=0)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8); pixels are 0-16
    labels = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(torch.arange(len(labels)).numpy(), test_size=test_fraction, random_state=seed,
                                   stratify=labels.numpy())
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    return DigitSplit(images[train], labels[train], images[test], labels[test])


def digit_vit(seed: int = 0) -> VisionTransformer:
    """The lesson's untrained vision transformer (``DIGIT_VIT``), its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return VisionTransformer(**DIGIT_VIT)


def digit_mlp(seed: int = 0, hidden: int = 128) -> nn.Module:
    """64 pixels -> ``hidden`` units -> 10 scores: the classic network without any notion of images."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden), nn.GELU(),
                         nn.Linear(hidden, N_CLASSES))


def digit_cnn(seed: int = 0, channels: int = 16) -> nn.Module:
    """Two 3 x 3 convolutions (the image prior: nearby pixels belong together, the same detector everywhere),
    a 2 x 2 pooling, then 10 scores."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.GELU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),  # (B, channels, 4, 4)
        nn.Flatten(), nn.Linear(channels * 16, N_CLASSES))


def classification_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Cross-entropy of ``model(images)`` against the labels; ``batch = (images, labels)``."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def train_classifier(model: nn.Module, split: DigitSplit, seed: int = 0, progress: bool = True,
                     **changes) -> TrainingHistory:
    """Train ``model`` on ``split``'s training digits with ``fit`` and the settings of ``TRAINING`` (override any
    of them: ``steps=400``). The batches are drawn from ``seed``."""
    unknown = set(changes) - set(TRAINING)
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}; known: {sorted(TRAINING)}")
    settings = {**TRAINING, **changes}
    batches = random_batches(split.train_images, split.train_labels, batch_size=settings.pop("batch_size"), seed=seed)
    return fit(model, batches, classification_loss, progress=progress, **settings)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The predicted digit of each image ``(n, 1, 8, 8)`` -> ``(n,)``, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(-1)
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` whose predicted digit is the label."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return float((predict(model, images) == labels).float().mean())


def train_digit_vit(seed: int = 0, split: DigitSplit | None = None, progress: bool = True, cache: bool = True,
                    **changes) -> tuple[VisionTransformer, TrainingHistory]:
    """The lesson's vision transformer, trained on the digits (``load_digit_split()`` unless given):
    ``(model in eval mode, history)``. About 10-20 s on one CPU thread. With ``cache`` the trained weights
    are also kept on disk for ``load_digit_vit`` (``course_lib.experiments.cache``; a cache that cannot be written is skipped)."""
    seed = require_int(seed, "seed", minimum=0)
    split = load_digit_split() if split is None else split
    if not cache:
        return _train_vit(seed, split, progress, changes)
    with _cache.lock(f"digit-vit-seed{seed}"):
        return _train_vit(seed, split, progress, changes, save_to=_vit_cache_path(seed, split, changes))


def load_digit_vit(seed: int = 0, split: DigitSplit | None = None, progress: bool = True,
                   **changes) -> tuple[VisionTransformer, TrainingHistory]:
    """The same trained vision transformer as ``train_digit_vit`` with these arguments: taken from the cache when
    lesson 11 (or an earlier call) trained it on this machine, else trained now (10-20 s) and cached."""
    seed = require_int(seed, "seed", minimum=0)
    split = load_digit_split() if split is None else split
    path = _vit_cache_path(seed, split, changes)
    with _cache.lock(f"digit-vit-seed{seed}"):  # if another kernel is training this very model, wait for it
        saved = _cache.load(path)
        if saved is None:
            return _train_vit(seed, split, progress, changes, save_to=path)
    model = digit_vit(seed)
    model.load_state_dict(saved["state"])
    return model.eval(), TrainingHistory(losses=list(saved["losses"]), seconds=float(saved["seconds"]))


def _train_vit(seed: int, split: DigitSplit, progress: bool, changes: dict,
               save_to=None) -> tuple[VisionTransformer, TrainingHistory]:
    model = digit_vit(seed)
    history = train_classifier(model, split, seed=seed, progress=progress, **changes)
    if save_to is not None:
        _cache.save(save_to, {"state": model.state_dict(), "losses": history.losses, "seconds": history.seconds})
    return model.eval(), history


# The modules whose code decides what training the digit transformer produces.
_VIT_SOURCES = ("models/attention.py", "models/block.py", "models/classifier.py", "models/positions.py",
                "models/vision.py", "experiments/digits.py", "experiments/training.py")


def _vit_cache_path(seed: int, split: DigitSplit, changes: dict):
    # The split's own numbers are part of the key: a caller may train on a split of their own.
    digest = hashlib.sha256()
    for tensor in (split.train_images, split.train_labels):
        digest.update(tensor.contiguous().numpy().tobytes())
    settings = (DIGIT_VIT, {**TRAINING, **changes}, seed, digest.hexdigest()[:16])
    return _cache.entry_path(f"digit-vit-seed{seed}", _VIT_SOURCES, settings)

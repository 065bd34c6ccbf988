"""course_lib.experiments.digits and the vision transformer on real pixels (lesson 11)."""

import pytest
import torch

from course_lib.experiments.digits import (DIGIT_VIT, DigitSplit, accuracy, digit_cnn, digit_mlp, digit_vit, load_digit_split,
                               load_digit_vit, predict, train_classifier, train_digit_vit)
from course_lib.models.vision import image_to_patches


def test_the_split_is_fixed_by_its_seed_stratified_and_disjoint():
    split = load_digit_split(seed=0)
    assert isinstance(split, DigitSplit)
    assert split.train_images.shape == (1347, 1, 8, 8) and split.test_images.shape == (450, 1, 8, 8)
    assert 0 <= float(split.train_images.min()) and float(split.train_images.max()) <= 1
    assert torch.equal(load_digit_split(seed=0).test_labels, split.test_labels)
    assert not torch.equal(load_digit_split(seed=1).test_labels, split.test_labels)
    counts = torch.bincount(split.test_labels)
    assert counts.min() >= 43 and counts.max() <= 46  # every digit keeps its share
    train_rows = {tuple(row.tolist()) for row in split.train_images.flatten(1)}
    overlap = sum(tuple(row.tolist()) in train_rows for row in split.test_images.flatten(1))
    assert overlap < 5  # a handful of digits are drawn identically twice in the data set; none are shared rows
    x, y, tx, ty = split.flat()
    assert x.shape == (1347, 64) and ty.shape == (450,)


@pytest.mark.parametrize("bad", [0, 1, -0.1, "0.2"])
def test_a_bad_test_fraction_is_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        load_digit_split(test_fraction=bad)


def test_the_models_read_digits_and_give_ten_scores():
    images = load_digit_split().test_images[:5]
    for make in (digit_vit, digit_mlp, digit_cnn):
        assert make(seed=0)(images).shape == (5, 10)
    vit = digit_vit(seed=0)
    assert vit.n_patches == 16 and DIGIT_VIT["patch"] == 2
    assert torch.equal(digit_vit(seed=3).cls, digit_vit(seed=3).cls)
    tokens = vit.patch_embed(image_to_patches(images, 2))
    assert tokens.shape == (5, 16, DIGIT_VIT["d_model"])


def test_a_few_steps_of_training_lower_the_loss_and_accuracy_is_a_share():
    split = load_digit_split()
    model = digit_mlp(seed=0)
    history = train_classifier(model, split, seed=0, progress=False, steps=60)
    assert sum(history.losses[-10:]) / 10 < sum(history.losses[:10]) / 10
    score = accuracy(model, split.test_images, split.test_labels)
    assert 0.3 < score <= 1
    assert predict(model, split.test_images[:7]).shape == (7,)
    with pytest.raises(TypeError, match="unknown training settings"):
        train_classifier(model, split, progress=False, epochs=3)
    with pytest.raises(ValueError, match="7 images but 6 labels"):
        accuracy(model, split.test_images[:7], split.test_labels[:6])


def test_the_patch_layer_starts_at_pytorchs_scale_not_gpt2s():
    # With std 0.02 a 4-pixel patch's vector was tiny and training sat on a plateau (see vision.py).
    vit = digit_vit(seed=0)
    assert float(vit.patch_embed.weight.detach().std()) > 0.1
    assert float(vit.stack.blocks[0].attn.q_proj.weight.detach().std()) < 0.03  # the blocks keep GPT-2's 0.02


# --- the trained digit transformer kept on disk: lesson 11 trains it, lesson 12 and exercises 11 load it ------------

def test_a_loaded_digit_vit_is_the_trained_one_and_loading_does_not_train(tmp_path, monkeypatch):
    from course_lib.experiments import digits

    monkeypatch.setenv("COURSE_LIB_CACHE", str(tmp_path / "cache"))
    split = load_digit_split(seed=0)
    trained, history = train_digit_vit(seed=1, split=split, progress=False, steps=5)
    assert len(list((tmp_path / "cache").glob("digit-vit-seed1-*threads-*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("load_digit_vit trained although the cache held the model")

    monkeypatch.setattr(digits, "_train_vit", no_training)
    loaded, loaded_history = load_digit_vit(seed=1, split=split, progress=False, steps=5)
    assert not loaded.training and loaded_history.losses == history.losses
    for name, tensor in trained.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    # Anything that changes the trained numbers is another entry: here it would have to train.
    for other in (dict(seed=2, steps=5), dict(seed=1, steps=6), dict(seed=1, steps=5, split=load_digit_split(seed=1))):
        with pytest.raises(AssertionError, match="trained although"):
            load_digit_vit(**{"split": split, "progress": False, **other})


def test_without_a_cache_the_digit_vit_is_trained_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LIB_CACHE", str(tmp_path / "cache"))
    train_digit_vit(seed=0, progress=False, cache=False, steps=2)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.pt"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("COURSE_LIB_CACHE", str(blocker))  # an unwritable cache only means training
    model, _ = load_digit_vit(seed=0, progress=False, steps=2)
    assert not model.training
    with pytest.raises(ValueError, match="seed"):
        load_digit_vit(seed=-1)

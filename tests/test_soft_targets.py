"""Stored teacher logits: one set per view, read back only for the views they were made for."""
import numpy as np
import pytest

from tinygray.data import prepared
from tinygray.distill import soft_targets
from tinygray.data.augment import Augmentation

VIEWS = Augmentation(views=3, max_rotation=10, max_shift=0.1, max_scale=0.1, seed=3)


@pytest.fixture
def stored(tmp_path, digits_split, trained_digits_cnn):
    prepared_dir, out = tmp_path / "prepared", tmp_path / "soft_targets"
    prepared.write_prepared(prepared_dir, {s: digits_split[s] for s in ("train", "val")}, [str(c) for c in range(10)])
    train_images, _ = prepared.read_split(prepared_dir, "train")
    train_logits = soft_targets.view_logits(trained_digits_cnn, train_images, VIEWS, 64, chunk=100)
    out.mkdir()
    soft_targets.write(out, train_logits, trained_digits_cnn.predict(digits_split["val"][0], verbose=0), VIEWS)
    return prepared_dir, out, train_logits


def test_logits_are_the_models_answer_for_each_view(stored, digits_split, trained_digits_cnn):
    _, _, train_logits = stored
    images = digits_split["train"][0]
    assert train_logits.shape == (3, len(images), 10)
    for view in (0, 2):
        expected = trained_digits_cnn.predict(VIEWS.view(images, np.arange(len(images)), view), verbose=0)
        np.testing.assert_allclose(train_logits[view], expected, rtol=1e-4, atol=1e-4)


def test_distillation_data_packs_labels_and_logits_per_view(stored, digits_split):
    prepared_dir, out, train_logits = stored
    (images, targets), (val_images, val_targets) = soft_targets.distillation_data(prepared_dir, out, VIEWS)
    labels = digits_split["train"][1]
    assert targets.shape == (3, len(labels), 20) and val_targets.shape == (len(val_images), 20)
    np.testing.assert_array_equal(targets[1, :, :10].argmax(1), labels)
    np.testing.assert_array_equal(targets[2, :, 10:], train_logits[2])


def test_logits_made_for_other_views_are_refused(stored):
    prepared_dir, out, _ = stored
    with pytest.raises(ValueError, match=r"views.json: soft targets were made for other views .* rerun soft_targets"):
        soft_targets.distillation_data(prepared_dir, out, Augmentation(**{**vars(VIEWS), "views": 4}))
    with pytest.raises(FileNotFoundError, match="run the soft_targets stage first"):
        soft_targets.distillation_data(prepared_dir, out.parent / "missing", VIEWS)

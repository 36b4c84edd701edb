import numpy as np
import pytest
from PIL import Image

from tinygray import data


def test_rgb_to_grayscale_matches_pil_luma():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 5, 7, 3), dtype=np.uint8)
    gray = data.to_grayscale(rgb)
    assert gray.shape == (3, 5, 7, 1) and gray.dtype == np.uint8
    for image, converted in zip(rgb, gray):
        pil = np.asarray(Image.fromarray(image).convert("L"), dtype=int)
        assert np.abs(pil - converted[..., 0].astype(int)).max() <= 1  # PIL rounds in fixed point


def test_rgba_drops_alpha_and_gray_passes_through():
    rgba = np.zeros((1, 2, 2, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 0
    assert (data.to_grayscale(rgba) == 200).all()
    gray = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    np.testing.assert_array_equal(data.to_grayscale(gray)[..., 0], gray)


def test_grayscale_rejects_unknown_layout():
    with pytest.raises(ValueError, match="shape"):
        data.to_grayscale(np.zeros((2, 4, 4, 2)))


def test_builtin_digits_are_uint8_pixels(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255 and set(labels) == set(range(10))


def test_resize(digits):
    images, _ = digits
    resized = data.resize(images[:4], 16)
    assert resized.shape == (4, 16, 16, 1) and resized.dtype == np.uint8
    assert data.resize(images[:4], 8) is images[:4] or np.array_equal(data.resize(images[:4], 8), images[:4])


def test_stratified_split_is_disjoint_complete_and_balanced(digits):
    _, labels = digits
    splits = data.stratified_split(labels, 0.1, 0.1, seed=3)
    all_indices = np.concatenate(list(splits.values()))
    assert sorted(all_indices) == list(range(len(labels)))
    for idx in splits.values():
        fractions = np.bincount(labels[idx], minlength=10) / len(idx)
        assert np.abs(fractions - np.bincount(labels) / len(labels)).max() < 0.02
    assert len(splits["test"]) == pytest.approx(0.1 * len(labels), abs=1)
    again = data.stratified_split(labels, 0.1, 0.1, seed=3)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_select_classes_relabels_in_given_order(digits):
    images, labels = digits
    sub_images, sub_labels, names = data.select_classes(images, labels, [8, 3])
    assert names == ["8", "3"]
    assert set(sub_labels) == {0, 1}
    assert (sub_labels == 0).sum() == (labels == 8).sum()
    with pytest.raises(ValueError, match="preprocess.classes"):
        data.select_classes(images, labels, [3, 42])


def test_prepared_round_trip(tmp_path, digits):
    images, labels = digits
    out = tmp_path / "prepared"
    data.write_prepared(out, {"train": (images[:10], labels[:10])}, [str(c) for c in range(10)])
    read_images, read_labels = data.read_split(out, "train")
    np.testing.assert_array_equal(read_images, images[:10])
    np.testing.assert_array_equal(read_labels, labels[:10])
    assert data.read_class_names(out) == [str(c) for c in range(10)]


def test_failed_write_leaves_nothing(tmp_path, digits):
    images, labels = digits
    out = tmp_path / "prepared"
    with pytest.raises(TypeError):
        data.write_prepared(out, {"train": (images[:10], labels[:10]), "val": None}, ["0"])
    assert list(tmp_path.iterdir()) == []

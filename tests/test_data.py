import numpy as np
import pytest
from PIL import Image

from tinygray.data import prepared, preprocess


def test_rgb_to_grayscale_matches_pil_luma():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 5, 7, 3), dtype=np.uint8)
    gray = preprocess.to_grayscale(rgb)
    assert gray.shape == (3, 5, 7, 1) and gray.dtype == np.uint8
    for image, converted in zip(rgb, gray):
        pil = np.asarray(Image.fromarray(image).convert("L"), dtype=int)
        assert np.abs(pil - converted[..., 0].astype(int)).max() <= 1  # PIL rounds in fixed point


def test_rgba_drops_alpha_and_gray_passes_through():
    rgba = np.zeros((1, 2, 2, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 0
    assert (preprocess.to_grayscale(rgba) == 200).all()
    gray = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    np.testing.assert_array_equal(preprocess.to_grayscale(gray)[..., 0], gray)


def test_grayscale_rejects_unknown_layout():
    with pytest.raises(ValueError, match="shape"):
        preprocess.to_grayscale(np.zeros((2, 4, 4, 2)))


def test_builtin_digits_are_uint8_pixels(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255 and set(labels) == set(range(10))


def test_resize(digits):
    images, _ = digits
    resized = preprocess.resize(images[:4], 16)
    assert resized.shape == (4, 16, 16, 1) and resized.dtype == np.uint8
    assert preprocess.resize(images[:4], 8) is images[:4] or np.array_equal(preprocess.resize(images[:4], 8), images[:4])


def test_stratified_split_is_disjoint_complete_and_balanced(digits):
    _, labels = digits
    splits = preprocess.stratified_split(labels, 0.1, 0.1, seed=3)
    all_indices = np.concatenate(list(splits.values()))
    assert sorted(all_indices) == list(range(len(labels)))
    for idx in splits.values():
        fractions = np.bincount(labels[idx], minlength=10) / len(idx)
        assert np.abs(fractions - np.bincount(labels) / len(labels)).max() < 0.02
    assert len(splits["test"]) == pytest.approx(0.1 * len(labels), abs=1)
    again = preprocess.stratified_split(labels, 0.1, 0.1, seed=3)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_select_classes_relabels_in_given_order(digits):
    images, labels = digits
    sub_images, sub_labels, names = preprocess.select_classes(images, labels, [8, 3])
    assert names == ["8", "3"]
    assert set(sub_labels) == {0, 1}
    assert (sub_labels == 0).sum() == (labels == 8).sum()
    with pytest.raises(ValueError, match="preprocess.classes"):
        preprocess.select_classes(images, labels, [3, 42])


def test_prepared_round_trip(tmp_path, digits):
    images, labels = digits
    out = tmp_path / "prepared"
    prepared.write_prepared(out, {"train": (images[:10], labels[:10])}, [str(c) for c in range(10)])
    read_images, read_labels = prepared.read_split(out, "train")
    np.testing.assert_array_equal(read_images, images[:10])
    np.testing.assert_array_equal(read_labels, labels[:10])
    assert prepared.read_class_names(out) == [str(c) for c in range(10)]


def test_failed_write_leaves_nothing(tmp_path, digits):
    images, labels = digits
    out = tmp_path / "prepared"
    with pytest.raises(TypeError):
        prepared.write_prepared(out, {"train": (images[:10], labels[:10]), "val": None}, ["0"])
    assert list(tmp_path.iterdir()) == []


def write_idx(path, array):
    """`array` as a gzipped unsigned-byte IDX file, the format of Debian's dataset-fashion-mnist files."""
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def fake_fashion_mnist(root, train_per_class=8, test_per_class=3):
    """A tiny copy of the four official files: class c's images are flat, 20 * c + their index mod 7 for
    training images, 20 * c + 10 + index mod 3 for test images (so no test image equals a training one)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, per_class, offset, cycle in (("train", train_per_class, 0, 7), ("test", test_per_class, 10, 3)):
        labels = np.repeat(np.arange(10), per_class)
        images = (20 * labels[:, None, None] + offset + np.arange(len(labels))[:, None, None] % cycle
                  + np.zeros((1, 28, 28), dtype=np.int64)).astype(np.uint8)
        images_file, labels_file = preprocess.FASHION_MNIST_FILES[split]
        write_idx(root / images_file, images)
        write_idx(root / labels_file, labels)
    return root


def test_fashion_mnist_reader_reads_the_official_format(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fashion")
    images, labels = preprocess.load_fashion_mnist("train", root)
    assert images.shape == (80, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 8))
    assert (images[labels == 3] >= 60).all() and (images[labels == 3] < 67).all()
    assert len(np.unique(images.reshape(80, -1)[:, 0])) == 70  # 7 distinct images per class
    test_images, test_labels = preprocess.load_fashion_mnist("test", root)
    assert test_images.shape == (30, 28, 28) and np.bincount(test_labels).tolist() == [3] * 10


def test_fashion_mnist_missing_names_the_debian_package(tmp_path):
    with pytest.raises(preprocess.DataError, match="apt-get install dataset-fashion-mnist") as error:
        preprocess.load_fashion_mnist("train", tmp_path / "nowhere")
    assert "train-images-idx3-ubyte.gz" in str(error.value)


def test_fashion_mnist_refuses_a_file_that_is_not_idx(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fashion")
    import gzip

    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"not an idx file at all")
    with pytest.raises(preprocess.DataError, match="train-images-idx3-ubyte.gz: not an unsigned-byte IDX file"):
        preprocess.load_fashion_mnist("train", root)


def test_fashion_mnist_keeps_the_official_test_set_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAY_FASHION_MNIST_DIR", str(fake_fashion_mnist(tmp_path / "fashion")))
    labels, names, test_source, _ = preprocess.prepare_builtin(
        "fashion_mnist", tmp_path / "prepared", image_size=16, classes=None, max_per_class=5, val_fraction=0.2,
        test_fraction=0.1, seed=0, duplicates="report")  # the fake's flat images are near-duplicates by design
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and test_source == "official test set"
    assert {split: len(y) for split, y in labels.items()} == {"train": 40, "val": 10, "test": 30}
    test_images, test_labels = prepared.read_split(tmp_path / "prepared", "test")
    official_images, official_labels = preprocess.load_fashion_mnist("test")
    np.testing.assert_array_equal(test_labels, official_labels)  # every test image, in the official order
    np.testing.assert_array_equal(test_images, preprocess.resize(preprocess.to_grayscale(official_images), 16))
    train_images, _ = prepared.read_split(tmp_path / "prepared", "train")
    # capped training pool from the official training images only
    assert not ({img.tobytes() for img in train_images} & {img.tobytes() for img in test_images})
    labels, names, _, _ = preprocess.prepare_builtin(
        "fashion_mnist", tmp_path / "binary", image_size=28, classes=[9, 5], max_per_class=None, val_fraction=0.25,
        test_fraction=0.1, seed=0, duplicates="report")
    assert names == ["Ankle boot", "Sandal"] and len(labels["test"]) == 6 and len(labels["train"]) == 12

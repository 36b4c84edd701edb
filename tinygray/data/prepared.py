"""The prepared-split format every stage after preprocess reads: data/prepared/<split>/images.npy (uint8,
(N, H, W, 1), memory-mappable) and labels.npy, and classes.json. Kept apart from the preprocessing code
(tinygray.data.preprocess) so that editing how images are prepared reruns preprocess, not every stage that reads them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinygray.pipeline.atomic import atomic_output

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """The data cannot be used as it is; the message names the folder, class, file or checkpoint."""


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


def write_unlabeled(unlabeled_dir: Path | str, images: np.ndarray) -> None:
    """The images without labels (tinygray.data.unlabeled; none at all without preprocess.unlabeled_dir), kept apart
    from the splits: the teacher and the scratch control never read them, so they do not depend on them."""
    with atomic_output(unlabeled_dir) as staging:
        staging.mkdir()
        np.save(staging / "images.npy", images)


def read_unlabeled(unlabeled_dir: Path | str | None) -> np.ndarray | None:
    """The images without labels (memory-mapped), or None when there are none."""
    if unlabeled_dir is None:
        return None
    path = Path(unlabeled_dir) / "images.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: unlabelled images not found; run the preprocess stage first")
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    return images if len(images) else None


def distillation_images(prepared_dir: Path | str, unlabeled_dir: Path | str | None) -> np.ndarray:
    """The images the teacher labels and the distilled students learn from: the training split, followed by the
    unlabelled images when there are any (so a training image keeps its index, and its views)."""
    train, _ = read_split(prepared_dir, "train")
    unlabeled = read_unlabeled(unlabeled_dir)
    return train if unlabeled is None else np.concatenate([np.asarray(train), np.asarray(unlabeled)])


def read_class_names(prepared_dir: Path | str) -> list[str]:
    return json.loads((Path(prepared_dir) / "classes.json").read_text())


def check_num_classes(model, prepared_dir: Path | str, path: Path | str) -> None:
    """Refuse a model (loaded from `path`) whose output or input does not fit the prepared data,
    with a message naming the checkpoint, instead of a shape error deep inside Keras."""
    class_names = read_class_names(prepared_dir)
    outputs = model.output_shape[-1]
    if outputs != len(class_names):
        raise DataError(f"{path}: model has {outputs} outputs but {prepared_dir} has {len(class_names)} classes "
                        f"({', '.join(class_names)}); retrain it on this data (dvc repro)")
    images, _ = read_split(prepared_dir, "train")
    expected = tuple(model.input_shape[1:])
    if any(e is not None and e != a for e, a in zip(expected, images.shape[1:])) or len(expected) != 3:
        raise DataError(f"{path}: model expects images of shape {expected} but {prepared_dir} holds "
                        f"{tuple(images.shape[1:])}; retrain it on this data (dvc repro)")

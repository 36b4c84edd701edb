"""The teacher's logits for every training view, stored once and read back checked against the data and
the views they were made for."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinygray.data import prepared
from tinygray.pipeline import progress
from tinygray.data.augment import Augmentation, check_made_for, record_made_for
from tinygray.distill.losses import pack_targets

VIEWS_FILE = "views.json"


def view_logits(model, images: np.ndarray, augmentation: Augmentation, batch_size: int,
                chunk: int = 2048) -> np.ndarray:
    """(views, N, classes) float32 logits of `model` for every view of every image, read and augmented a
    chunk at a time, so memory holds one chunk of images, not the set times the views."""
    out = np.empty((augmentation.views, len(images), model.output_shape[-1]), dtype=np.float32)
    for view in progress.steps(range(augmentation.views), "soft targets", unit="view"):
        for start in range(0, len(images), chunk):
            indices = np.arange(start, min(start + chunk, len(images)))
            batch = augmentation.view(np.asarray(images[indices]), indices, view)
            out[view, indices] = model.predict(batch, batch_size=batch_size, verbose=0)
    return out


def write(out_dir: Path, train_logits: np.ndarray, val_logits: np.ndarray, augmentation: Augmentation) -> None:
    np.save(out_dir / "train_logits.npy", train_logits.astype(np.float32))
    np.save(out_dir / "val_logits.npy", val_logits.astype(np.float32))
    record_made_for(out_dir / VIEWS_FILE, augmentation)


def distillation_data(prepared_dir, soft_targets_dir, augmentation: Augmentation,
                      unlabeled_dir=None) -> tuple[tuple, tuple]:
    """((train images, (views, N, 2C) packed targets), (val images, (N, 2C) packed targets)): labels and
    teacher logits side by side (losses.pack_targets), one set of targets per training view. Unlabelled
    images (unlabeled_dir: preprocess.unlabeled_dir's) follow the training images, with no label: the teacher's
    logits alone."""
    soft_targets_dir = Path(soft_targets_dir)
    check_made_for(soft_targets_dir / VIEWS_FILE, augmentation, what="soft targets", stage="soft_targets")
    (_, train_labels), (val_images, val_labels) = (prepared.read_split(prepared_dir, split) for split in ("train", "val"))
    train_images = prepared.distillation_images(prepared_dir, unlabeled_dir)
    train_labels = np.concatenate([train_labels, np.full(len(train_images) - len(train_labels), -1, np.int64)])
    train_logits = _read(soft_targets_dir / "train_logits.npy", (augmentation.views, len(train_labels)))
    val_logits = _read(soft_targets_dir / "val_logits.npy", (len(val_labels),))
    train_targets = np.stack([pack_targets(train_labels, logits) for logits in train_logits])
    return (train_images, train_targets), (val_images, pack_targets(val_labels, val_logits))


def _read(path: Path, leading_shape: tuple[int, ...]) -> np.ndarray:
    logits = np.load(path, allow_pickle=False)
    if logits.shape[:len(leading_shape)] != leading_shape or logits.ndim != len(leading_shape) + 1:
        raise ValueError(f"{path}: logits of shape {logits.shape}, expected {leading_shape} + (classes,); "
                         "rerun soft_targets (dvc repro)")
    return logits

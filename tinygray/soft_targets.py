"""Reading the stored teacher logits back, checked against the data they were made from."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinygray import data
from tinygray.distillation import pack_targets


def read_logits(soft_targets_dir: Path | str, split: str, num_images: int) -> np.ndarray:
    path = Path(soft_targets_dir) / f"{split}_logits.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: soft targets not found; run the soft_targets stage first")
    logits = np.load(path, allow_pickle=False)
    if len(logits) != num_images:
        raise ValueError(f"{path}: {len(logits)} logits for {num_images} {split} images; rerun soft_targets")
    return logits


def distillation_split(prepared_dir, soft_targets_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, packed targets) for training a student on labels and teacher logits together."""
    images, labels = data.read_split(prepared_dir, split)
    return images, pack_targets(labels, read_logits(soft_targets_dir, split, len(labels)))

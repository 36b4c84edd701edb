"""Images without labels (preprocess.unlabeled_dir): read like the labelled folder, guarded against leakage, and
stored beside the splits for the distilled students alone.

Why: users hold many more unlabelled scans than labelled ones, and only a distilled student can learn from
them (the teacher labels their views with its logits; the student trains on the soft-target term alone). The
scratch control cannot, which is exactly the comparison distillation has to win. An unlabelled image that
near-duplicates a validation or test image would let the teacher's answer for that image reach the student
(and its selection on validation), so the leakage guard drops such images before the teacher ever sees them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tinygray.data.duplicates import near_duplicate_pairs, signatures
from tinygray.data.folders import IMAGE_EXTENSIONS, read_images_into
from tinygray.data.prepared import DataError, write_unlabeled

PARAM = "preprocess.unlabeled_dir"


def scan(root: Path | str) -> list[Path]:
    """Every non-hidden file under `root`, at any depth, sorted; files that are not images are kept, so the reader
    reports them under on_bad_file. Symlinks are followed only inside `root`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"parameter '{PARAM}': {root} is not an existing folder (relative to {Path.cwd()})")
    allowed = Path(os.path.realpath(root))
    paths = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith("."):
                continue
            if not Path(os.path.realpath(path)).is_relative_to(allowed):
                raise DataError(f"{path}: symlink outside {root}; refusing to follow it")
            paths.append(path)
    if not any(path.suffix.lower() in IMAGE_EXTENSIONS for path in paths):
        raise DataError(f"parameter '{PARAM}': {root} holds no image file ({' '.join(IMAGE_EXTENSIONS)}) at any depth")
    return sorted(paths)


def prepare(root: Path | str, out_dir: Path | str, *, image_size: int, resize: str, on_bad_file: str,
            held_out: list[np.ndarray], progress: bool = True) -> dict:
    """Read every image under `root` (gray, image_size, `resize` as for the labelled images), drop those that
    near-duplicate an image of `held_out` (the validation and test images), and write the rest to out_dir
    (prepared.write_unlabeled). Returns what it found for the metrics."""
    paths = scan(root)
    print(f"preprocess: reading {len(paths)} unlabelled files from {root}", flush=True)
    images = np.empty((len(paths), image_size, image_size, 1), np.uint8)
    kept_labels, skipped = read_images_into(images, paths, np.zeros(len(paths), np.int64), on_bad_file=on_bad_file,
                                            resize=resize, progress=progress)
    images = images[:len(kept_labels)]
    if not len(images):
        raise DataError(f"parameter '{PARAM}': no readable image in {root} ({len(skipped)} unreadable, e.g. "
                        f"{skipped[0][0]}: {skipped[0][1]})")
    reference = np.concatenate([np.asarray(split) for split in held_out])
    hashes, copies = signatures(np.concatenate([reference, images]))
    leaking = sorted({j - len(reference) for i, j, _ in near_duplicate_pairs(hashes, copies)
                      if i < len(reference) <= j})
    keep = np.setdiff1d(np.arange(len(images)), leaking)
    write_unlabeled(out_dir, images[keep])
    print(f"preprocess: {len(keep)} unlabelled images kept; {len(leaking)} dropped as near-duplicates of validation "
          f"or test images, {len(skipped)} unreadable", flush=True)
    return {"found": len(paths), "unreadable": len(skipped), "near_duplicates_of_val_or_test": len(leaking),
            "kept": int(len(keep)), "skipped_files": {Path(path).as_posix(): reason for path, reason in skipped}}

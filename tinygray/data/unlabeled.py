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
from dataclasses import dataclass
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


@dataclass
class Read:
    """The unlabelled images of a folder, decoded (read), before the leakage guard (keep_apart)."""
    root: Path
    paths: list[Path]
    images: np.ndarray
    skipped: list[tuple[str, str]]


def read(root: Path | str, *, image_size: int, resize: str, on_bad_file: str, progress: bool = True) -> Read:
    """Decode every image under `root` (gray, image_size, `resize` as for the labelled images). The preprocess
    stage calls it before it reads the labelled images, so that a folder of unreadable files or an image too
    large to decode is refused in seconds, not after the labelled folder has been decoded."""
    paths = scan(root)
    print(f"preprocess: reading {len(paths)} unlabelled files from {root}", flush=True)
    images = np.empty((len(paths), image_size, image_size, 1), np.uint8)
    kept_labels, skipped = read_images_into(images, paths, np.zeros(len(paths), np.int64), on_bad_file=on_bad_file,
                                            resize=resize, progress=progress)
    images = images[:len(kept_labels)]
    if not len(images):
        raise DataError(f"parameter '{PARAM}': no readable image in {root} ({len(skipped)} unreadable, e.g. "
                        f"{skipped[0][0]}: {skipped[0][1]})")
    return Read(Path(root), paths, images, skipped)


def keep_apart(found: Read, out_dir: Path | str, *, held_out: list[np.ndarray]) -> dict:
    """Drop the images that near-duplicate an image of `held_out` (the validation and test images), write the rest
    to out_dir (prepared.write_unlabeled). Returns what was found for the metrics."""
    images = found.images
    reference = np.concatenate([np.asarray(split) for split in held_out])
    pairs = near_duplicate_pairs(signatures(np.concatenate([reference, images])), across=len(reference))
    leaking = sorted({j - len(reference) for _, j, _ in pairs})
    keep = np.setdiff1d(np.arange(len(images)), leaking)
    write_unlabeled(out_dir, images[keep])
    print(f"preprocess: {len(keep)} unlabelled images kept; {len(leaking)} dropped as near-duplicates of validation "
          f"or test images, {len(found.skipped)} unreadable", flush=True)
    return {"found": len(found.paths), "unreadable": len(found.skipped), "near_duplicates_of_val_or_test": len(leaking),
            "kept": int(len(keep)), "skipped_files": {Path(path).as_posix(): reason for path, reason in found.skipped}}


def prepare(root: Path | str, out_dir: Path | str, *, image_size: int, resize: str, on_bad_file: str,
            held_out: list[np.ndarray], progress: bool = True) -> dict:
    """read, then keep_apart: the whole of it for callers that have the held-out images already."""
    return keep_apart(read(root, image_size=image_size, resize=resize, on_bad_file=on_bad_file, progress=progress),
                      out_dir, held_out=held_out)

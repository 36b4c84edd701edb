"""A user's image folder, one subfolder per class, read as the same 8-bit gray the built-in datasets become."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from tinygray.data.prepared import DataError
from tinygray.pipeline.progress import steps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# The only decoders PIL may try, whatever a file's bytes claim to be: its other plugins
# (EPS, which runs Ghostscript, among them) never see user files.
DECODERS = ("PNG", "JPEG", "BMP", "TIFF")
BAD_FILE_POLICIES = ("fail", "skip")


class BadImageError(DataError):
    """One file is not a readable image; on_bad_file decides whether that stops the run."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def scan_image_folder(root: Path, *, allowed_root: Path | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Paths and int64 labels of every entry of every class folder, and the class names, all sorted.

    Class names are the subfolder names. Hidden entries ('.' names) and files directly in `root` are
    ignored; other non-image entries are kept, so the reader reports them under on_bad_file instead of
    dropping them unseen. Symlinks are followed only if they resolve inside `allowed_root` (default `root`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found or not a directory")
    allowed = Path(os.path.realpath(allowed_root or root))
    if not Path(os.path.realpath(root)).is_relative_to(allowed):
        raise DataError(f"{root}: image folder is outside allowed_root {allowed}")
    class_dirs = [entry for entry in _entries(root, allowed) if entry.is_dir()]
    if not class_dirs:
        raise DataError(f"{root}: no class subfolders; expected one subfolder of images per class")
    if len(class_dirs) == 1:
        raise DataError(f"{root}: only one class, {class_dirs[0].name!r}; a classifier needs two or more")
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        entries = _entries(class_dir, allowed)
        if not any(entry.suffix.lower() in IMAGE_EXTENSIONS for entry in entries):
            raise DataError(f"{class_dir}: class {class_dir.name!r} has no image files ({' '.join(IMAGE_EXTENSIONS)})")
        paths += entries
        labels += [label] * len(entries)
    return paths, np.array(labels, dtype=np.int64), [class_dir.name for class_dir in class_dirs]


def ignored_entries(root: Path) -> dict[str, str]:
    """What scan_image_folder leaves out of `root`, with why, for the stage log and metrics: hidden entries
    ('.' names: .DS_Store, .ipynb_checkpoints, a `.rejected` class) and files directly in `root`. Ignored
    without a word, a hidden class folder of real images once went missing from a run unnoticed."""
    root, ignored = Path(root), {}
    if not root.is_dir():
        return ignored
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            ignored[entry.as_posix()] = "hidden (name starts with '.')"
        elif not entry.is_dir():
            ignored[entry.as_posix()] = "a file beside the class folders, not in one"
        else:
            ignored.update({inner.as_posix(): "hidden (name starts with '.')"
                            for inner in sorted(entry.iterdir()) if inner.name.startswith(".")})
    return ignored


def _entries(folder: Path, allowed: Path) -> list[Path]:
    """Sorted non-hidden entries of `folder`, refusing any symlink that leads outside `allowed`."""
    entries = sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    for entry in entries:
        target = Path(os.path.realpath(entry))  # never raises on a symlink loop: reading it fails later
        if not target.is_relative_to(allowed):
            raise DataError(f"{entry}: symlink to {target}, outside {allowed}; refusing to follow it")
    return entries


RESIZE_MODES = ("squash", "crop", "pad")


def load_grayscale(path: Path, size: int, resize: str = "squash") -> np.ndarray:
    """One image file -> (size, size) uint8 luma, or BadImageError saying why it cannot be read.

    `resize` makes a non-square image square (to_square): squash it (the default), crop its centre, or pad it
    with black.

    Colour becomes ITU-R BT.601 luma with alpha dropped, as in preprocess.to_grayscale; 16-bit gray is scaled
    (65535 -> 255) and float gray is taken as 0..1. The resize is PIL's antialiased BILINEAR (no reducing_gap
    shortcut), as in preprocess.resize.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BadImageError(path, f"not an image file (extension {path.suffix!r} is not one of "
                                  f"{' '.join(IMAGE_EXTENSIONS)})")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is enabled (by some import): "
                           "truncated images would load half gray instead of failing")
    if path.is_file() and path.stat().st_size == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=DECODERS) as image:
                frames = getattr(image, "n_frames", 1)
                if frames > 1:  # an animated PNG or a multi-page TIFF: which frame is the image?
                    raise BadImageError(path, f"{frames} frames (animated or multi-page); save the one image to "
                                              "train on as a single-frame file")
                image.load()  # decode every pixel now, so a truncated or corrupt file fails here
                gray = _to_luma(image)
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImageError(path, f"unreadable image: {error}") from error
    return np.asarray(to_square(gray, resize).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def to_square(image: Image.Image, mode: str) -> Image.Image:
    """squash: the image as it is (the resize then changes its aspect ratio); crop: its centre square, losing
    the edges of the long side; pad: the image centred on a black square, losing nothing."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r}")
    width, height = image.size
    if mode == "squash" or width == height:
        return image
    side = min(width, height) if mode == "crop" else max(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if mode == "crop":
        return image.crop((left, top, left + side, top + side))
    square = Image.new(image.mode, (side, side), 0)
    square.paste(image, (-left, -top))
    return square


def _to_luma(image: Image.Image) -> Image.Image:
    """8-bit gray of any decoded mode; convert("L") would clip 16-bit and float gray, so those are scaled here,
    a band of rows at a time into one uint8 array: memory stays at the decoded image plus one byte a pixel
    (a 9,400 x 9,400 16-bit PNG peaked at 2.55 GB through whole-image float64 temporaries)."""
    if image.mode == "F":
        def to_8bit(band):
            return np.clip(np.rint(band * np.float32(255.0)), 0, 255)
    elif image.mode.startswith("I"):  # I;16, I;16B, ... and I (32-bit int, taken to hold 16-bit data)
        def to_8bit(band):  # the inverse of 8 -> 16 bit's x * 257, rounded to nearest: (x + 128) // 257
            return np.clip((band.astype(np.int64) + 128) // 257, 0, 255)
    else:
        return image.convert("L")  # RGB(A), CMYK, P, LA, 1, ...: BT.601 luma, alpha ignored
    width, height = image.size
    gray = np.empty((height, width), dtype=np.uint8)
    rows = max(1, LUMA_BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        gray[top:top + rows] = to_8bit(np.asarray(image.crop((0, top, width, min(height, top + rows)))))
    return Image.fromarray(gray)


LUMA_BAND_PIXELS = 1 << 20  # pixels converted at a time by _to_luma


def read_images_into(out: np.ndarray, paths: list[Path], labels: np.ndarray, *, on_bad_file: str = "fail",
                     resize: str = "squash", progress: bool = True) -> tuple[np.ndarray, list[tuple[Path, str]]]:
    """Decode `paths` into out[:n] in order; return the n kept labels and the skipped (path, reason) pairs.

    `out` is (len(paths), size, size, 1) uint8, typically an np.lib.format.open_memmap, so only one image
    is in memory at a time and the folder may be larger than RAM. Skipped files leave out[n:] unused:
    nothing is decoded twice and nothing is copied. on_bad_file="fail" raises the first BadImageError.
    """
    if on_bad_file not in BAD_FILE_POLICIES:
        raise ValueError(f"on_bad_file must be one of {BAD_FILE_POLICIES}, got {on_bad_file!r}")
    size = out.shape[1]
    if out.dtype != np.uint8 or out.shape[1:] != (size, size, 1) or len(out) < len(paths):
        raise ValueError(f"out must be uint8 of shape ({len(paths)}, size, size, 1), got {out.dtype} {out.shape}")
    kept, skipped = [], []
    bar = steps(paths, "reading images", unit="image", enabled=progress)
    for path, label in zip(bar, labels):
        try:
            out[len(kept), ..., 0] = load_grayscale(path, size, resize)
        except BadImageError as error:
            if on_bad_file == "fail":
                raise
            skipped.append((path, error.reason))
            continue
        kept.append(label)
    return np.array(kept, dtype=np.int64), skipped


def split_counts_check(labels: np.ndarray, class_names: list[str], val_fraction: float, test_fraction: float,
                       before_duplicates: np.ndarray | None = None) -> None:
    """Refuse classes too small for preprocess.stratified_split to give each of train, val and test one image
    (test_fraction 0: the test split comes from elsewhere, so only train and val).

    Test and val sizes are rounded up, so train can lose one image of a class to each: with both it needs
    3 / train fraction. With `before_duplicates` (each class's count before near-duplicates were dropped), a
    class emptied by the leakage guard says so: "has 1" alone reads as a folder with one image in it.
    """
    train_fraction = 1.0 - val_fraction - test_fraction
    drawn = [fraction for fraction in (val_fraction, test_fraction) if fraction]
    if val_fraction <= 0 or test_fraction < 0 or train_fraction <= 0:
        raise ValueError(f"val_fraction ({val_fraction}) must be > 0, test_fraction ({test_fraction}) >= 0, "
                         "and both must leave images for training")
    needed = max(math.ceil(round(images / fraction, 9))
                 for images, fraction in [(1, fraction) for fraction in drawn] + [(1 + len(drawn), train_fraction)])
    counts = np.bincount(labels, minlength=len(class_names))
    before = counts if before_duplicates is None else before_duplicates
    small = [f"class {name!r} has {count}" + (f" ({had - count} of its {had} images dropped as near-duplicates)"
                                               if had > count else "")
             for name, count, had in zip(class_names, counts, before) if count < needed]
    if small:
        splits = "train, val and test" if test_fraction else "train and val"
        dropped = any(had > count for count, had in zip(counts, before))
        raise DataError(f"too few images for a stratified split: {', '.join(small)}; with val_fraction={val_fraction} "
                        f"and test_fraction={test_fraction} each class needs at least {needed} "
                        f"so {splits} all get one"
                        + ("; preprocess.duplicates: report keeps near-duplicates (and lists them)" if dropped else ""))

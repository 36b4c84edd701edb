"""Recall of the leakage guard on planted copies of real scans, its false pairs, and its cost.

Plants one copy of each of N brain MRI training scans per kind (re-encoded, resized, blurred, noisy,
brighter, more contrast, cropped, rotated: the strengths issue 48 measured on chest X-rays) beside the
originals of all four classes, runs the real preprocess code (preprocess.prepare_folder, duplicates: report)
once per kind, and prints a JSON report: for each kind the copies found, and the pairs that join two
classes (different patients: false pairs). tests/test_duplicates.py runs the same kinds on 30 scans.

    .venv/bin/python benchmarks/leakage_guard.py [--images 400] [--dataset ../shared/datasets/brain-mri]

Not part of the test suite (about a minute per 400 images).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def _reencoded(image: Image.Image, rng) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _noisy(image: Image.Image, rng) -> Image.Image:
    noise = rng.normal(0, 8, (image.height, image.width))
    return Image.fromarray((np.asarray(image, np.float32) + noise).clip(0, 255).astype(np.uint8))


def _cropped(image: Image.Image, rng) -> Image.Image:
    """3% of width and height cut off, split at random between the two sides."""
    cut_x, cut_y = round(image.width * 0.03), round(image.height * 0.03)
    left, top = int(rng.integers(0, cut_x + 1)), int(rng.integers(0, cut_y + 1))
    return image.crop((left, top, image.width - (cut_x - left), image.height - (cut_y - top)))


PLANTED_KINDS = {  # name: the change made to a gray PIL image (with a numpy Generator for random ones)
    "jpeg_q70": _reencoded,
    "resized_2_3": lambda image, rng: image.resize((image.width * 2 // 3, image.height * 2 // 3),
                                                   Image.Resampling.BILINEAR),
    "blurred_1_5px": lambda image, rng: image.filter(ImageFilter.GaussianBlur(1.5)),
    "noise_8_levels": _noisy,
    "brightness_10pc": lambda image, rng: ImageEnhance.Brightness(image).enhance(1.1),
    "contrast_15pc": lambda image, rng: ImageEnhance.Contrast(image).enhance(1.15),
    "crop_3pc": _cropped,
    "rotation_2deg": lambda image, rng: image.rotate(2 * rng.choice([-1, 1]), resample=Image.Resampling.BILINEAR),
}


def planted_folder(folder: Path, originals: dict[str, list[Path]], sources: list[Path], kind: str, rng) -> None:
    """folder/<class>/: the originals, plus planted_<stem>.png, a `kind` copy of each source, in its class."""
    for name, paths in originals.items():
        (folder / name).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, folder / name / path.name)
    for path in sources:
        PLANTED_KINDS[kind](Image.open(path).convert("L"), rng).save(folder / path.parent.name / f"planted_{path.stem}.png")


def guard(folder: Path, out: Path, image_size: int):
    """The real preprocess code on `folder` (duplicates: report): the pairs as rows."""
    from tinygray.data import preprocess
    with contextlib.redirect_stdout(sys.stderr):  # its log lines; stdout is the report
        _, names, _, _, found = preprocess.prepare_folder(folder, out, image_size=image_size, val_fraction=0.2,
                                                          test_fraction=0.2, seed=0, duplicates="report", progress=False)
    return found.rows(names)


def found_copies(rows: list[dict], sources: list[Path]) -> int:
    pairs = {frozenset(Path(row[side]).stem for side in ("first", "second")) for row in rows}
    return sum(frozenset((p.stem, f"planted_{p.stem}")) in pairs for p in sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="scans copied per kind (spread over the classes)")
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/brain-mri")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    rng = np.random.default_rng(0)
    classes = sorted(p.name for p in (args.dataset / "train").iterdir())
    per_class = args.images // len(classes)
    originals = {c: sorted((args.dataset / "train" / c).glob("*"))[:per_class] for c in classes}
    sources = [path for c in classes for path in originals[c]]
    report = {"images_per_kind": len(sources), "kinds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in PLANTED_KINDS:
            folder = Path(tmp) / kind
            planted_folder(folder / "train", originals, sources, kind, rng)
            start = time.perf_counter()
            rows = guard(folder / "train", folder / "out", args.image_size)
            report["kinds"][kind] = {"found": found_copies(rows, sources),
                                     "pairs_across_classes": sum(r["first_label"] != r["second_label"] for r in rows),
                                     "preprocess_s": round(time.perf_counter() - start, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

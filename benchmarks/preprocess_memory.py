"""Peak memory and wall time of preprocessing a large image folder and training one epoch from it.

Generates N 256x256 grayscale PNGs in 2 classes, runs the preprocess stage's code path
(preprocess.prepare_folder) at image_size 64, then one epoch of a small CNN streaming batches from the
memory-mapped train split (loop.Batches). Prints a JSON report; fails if peak RSS reaches --limit-gb.

    .venv/bin/python benchmarks/preprocess_memory.py [WORKDIR] [--images 20000]

Not part of the test suite (minutes, ~0.5 GB of disk).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_images(args: tuple[Path, int, int, int]) -> None:
    """Class 0: horizontal stripes, class 1: vertical, with noise; compressible, and learnable."""
    folder, label, start, stop = args
    folder.mkdir(parents=True, exist_ok=True)
    axis = np.arange(256)
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        stripes = 127 + 100 * np.sin(axis / rng.uniform(4, 16) + rng.uniform(0, 6.3))
        pixels = np.tile(stripes, (256, 1)) if label else np.tile(stripes[:, None], (1, 256))
        pixels = pixels + rng.normal(0, 20, (256, 256))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.png")


def generate(root: Path, count: int, workers: int = 2) -> None:
    per_class, chunk = count // 2, 500
    jobs = [(root / f"class_{label}", label, start, min(start + chunk, per_class))
            for label in (0, 1) for start in range(0, per_class, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_images, jobs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", nargs="?", type=Path, help="where images and outputs go (default: a temp dir)")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit-gb", type=float, default=2.0)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tinygray-bench-"))
    raw, prepared_dir = workdir / "raw", workdir / "prepared"
    report = {"images": args.images, "source_size": 256, "image_size": args.image_size, "workdir": str(workdir)}

    start = time.perf_counter()
    if len(list(raw.glob("*/*.png"))) != args.images:
        generate(raw, args.images)
    report["generate_seconds"] = round(time.perf_counter() - start, 1)

    from tinygray.data import prepared, preprocess
    from tinygray.train import loop

    start = time.perf_counter()
    labels, class_names, skipped, _, _ = preprocess.prepare_folder(raw, prepared_dir, image_size=args.image_size, val_fraction=0.1,
                                                                   test_fraction=0.1, seed=0, progress=False)
    report["preprocess_seconds"] = round(time.perf_counter() - start, 1)
    report["peak_rss_mb_after_preprocess"] = round(peak_rss_mb())
    report["prepared_mb"] = round(sum(p.stat().st_size for p in prepared_dir.rglob("*.npy")) / 2**20)

    import keras

    keras.utils.set_random_seed(0)
    images, train_labels = prepared.read_split(prepared_dir, "train")
    model = keras.Sequential([
        keras.Input(images.shape[1:]), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"), keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(len(class_names))])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(loop.Batches(images, train_labels, args.batch_size, seed=0), epochs=1, verbose=2)
    report["train_epoch_seconds"] = round(time.perf_counter() - start, 1)
    report["train_images"] = int(len(train_labels))
    report["train_accuracy"] = round(float(history.history["accuracy"][-1]), 4)
    report["peak_rss_mb"] = round(peak_rss_mb())
    report["generator_children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    return 0 if report["peak_rss_mb"] < args.limit_gb * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())

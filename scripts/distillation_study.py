"""Distilled students against their scratch controls under one set of changed parameters, on the data and
teacher the pipeline already made (data/prepared, models/teacher.keras), scored on the test split.

    python scripts/distillation_study.py RESULTS.jsonl NAME [key=value ...] [--seeds 42,43,44] [--kinds distilled,scratch]
                                         [--targets DIR] [--unlabeled-dir DIR] [--int8]
    python scripts/distillation_study.py RESULTS.jsonl NAME --score-pipeline

Each key is a train_student or augment parameter (train_student.temperature=2, augment.views=32, ...), the
rest is params.yaml. Students are trained exactly as the train_student and train_scratch stages train them
(tinygray.train.student.train_one), one per seed and kind; the teacher's logits for a new set of views are
computed once and cached beside the results. One JSON line per trained student is appended to RESULTS:
validation and test accuracy, fidelity to the teacher, epochs and seconds. This is how the README's
distillation table was measured: it runs only the students, where a `dvc exp run` would also prune,
quantize and benchmark every variant.

The controls that separate what transfer buys from what distillation adds, for a student cut from the teacher
(train_student.teacher_blocks): `--kinds scratch` is the same network from random weights on labels, `--kinds
distilled train_student.alpha=1` the inherited network on labels alone, `--kinds distilled` the inherited network
distilled, and `--unlabeled-dir DIR` adds DIR's images (guarded against the validation and test images, as
preprocess.unlabeled_dir is) for the distilled students to learn from the teacher alone. `--score-pipeline`
trains nothing: it adds the pipeline's own students and scratch controls (models/student/, models/scratch/) as
rows, so that scripts/study_summary.py can pair them with the students trained here.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import yaml

from tinygray.train import backend
from tinygray.pipeline.params import from_dict, load_params

# the students' backend, as in the stages (a train_student.backend=... override wins); before Keras is imported
backend.select(next((yaml.safe_load(arg.partition("=")[2]) for arg in sys.argv[1:]
                     if arg.startswith("train_student.backend=")), load_params().train_student.backend))

import numpy as np  # noqa: E402

from tinygray.data import prepared, unlabeled  # noqa: E402
from tinygray.distill import soft_targets
from tinygray.evaluate import benchmark
from tinygray.models.files import count_params, load_model
from tinygray.train import student
from tinygray.pipeline.atomic import atomic_output  # noqa: E402
from tinygray.data.augment import Augmentation, StoredViews, write_views  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402

PREPARED, TEACHER = layout.PREPARED, layout.model("teacher")


def parse_override(text: str) -> tuple[str, str, object]:
    key, _, value = text.partition("=")
    section, _, name = key.partition(".")
    if section not in ("train_student", "augment") or not name or not _:
        raise SystemExit(f"{text!r}: expected train_student.<key>=<value> or augment.<key>=<value>")
    return section, name, yaml.safe_load(value)


def cached_unlabeled(root: Path, cache: Path) -> Path:
    """The unlabelled images of `root` as preprocess would keep them (tinygray.data.unlabeled), prepared once."""
    folder = cache / ("unlabeled_" + hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12])
    if not (folder / "images.npy").is_file():
        params = load_params().preprocess
        unlabeled.prepare(root, folder, image_size=params.image_size, resize=params.resize, on_bad_file=params.on_bad_file,
                          held_out=[prepared.read_split(PREPARED, split)[0] for split in ("val", "test")])
    return folder


def cached_views_and_targets(teacher, augmentation: Augmentation, cache: Path, unlabeled_dir: Path | None) -> Path:
    """A folder with these views of the training images (and unlabelled ones) and the teacher's logits for them
    (computed once, then reused)."""
    key = json.dumps({**dataclasses.asdict(augmentation), "unlabeled": str(unlabeled_dir)}, sort_keys=True) \
        if unlabeled_dir else json.dumps(dataclasses.asdict(augmentation), sort_keys=True)
    folder = cache / hashlib.sha1(key.encode()).hexdigest()[:12]
    if not (folder / soft_targets.VIEWS_FILE).is_file():
        train_images = prepared.distillation_images(PREPARED, unlabeled_dir)
        val_images, _ = prepared.read_split(PREPARED, "val")
        with atomic_output(folder) as staging:
            staging.mkdir()
            write_views(staging, train_images, augmentation)
            train_logits = soft_targets.view_logits(teacher, train_images, StoredViews(staging, augmentation), 256)
            val_logits = teacher.predict(np.asarray(val_images), batch_size=256, verbose=0)
            soft_targets.write(staging, train_logits, val_logits, augmentation)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seeds", default=None, help="comma-separated; default: the seeds train_student would use")
    parser.add_argument("--kinds", default="distilled,scratch")
    parser.add_argument("--targets", type=Path, default=None,
                        help="a folder of views and teacher logits to distil from instead (scripts/out_of_fold_targets.py)")
    parser.add_argument("--score-pipeline", action="store_true",
                        help="score every seed of models/student and models/scratch instead of training")
    parser.add_argument("--int8", action="store_true",
                        help="also convert each student to int8 TFLite and record its bytes and test accuracy")
    parser.add_argument("--unlabeled-dir", type=Path, default=None,
                        help="a folder of images without labels for the distilled students (as preprocess.unlabeled_dir)")
    args = parser.parse_args()

    raw = load_params().model_dump()
    for section, key, value in map(parse_override, args.overrides):
        raw[section][key] = value  # an unknown key is refused by name below, like a typo in params.yaml
    params = from_dict(raw, source=f"params.yaml with {' '.join(args.overrides)}")
    p = params.train_student
    augmentation = Augmentation.from_params(params.augment, params.seed)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else student.seeds(p, params.seed)
    teacher = load_model(TEACHER)
    test_images, test_labels = prepared.read_split(PREPARED, "test")
    test_images = np.asarray(test_images)
    teacher_predictions = teacher.predict(test_images, batch_size=256, verbose=0).argmax(axis=1)
    num_classes = len(prepared.read_class_names(PREPARED))
    if args.score_pipeline:
        for kind, directory in (("distilled", layout.seeds("student")), ("scratch", layout.seeds("scratch"))):
            for path in sorted(directory.glob("seed_*.keras")):
                model = load_model(path)
                record(args, kind, int(path.stem.removeprefix("seed_")), model, None, test_images, test_labels,
                       teacher_predictions, 0, 0.0)
        return
    cache = args.results.parent / "cache"
    unlabeled_images = cached_unlabeled(args.unlabeled_dir, cache) if args.unlabeled_dir else None
    extra = prepared.read_unlabeled(unlabeled_images)
    num_unlabeled = 0 if extra is None else len(extra)
    folder = args.targets or (cached_views_and_targets(teacher, augmentation, cache, unlabeled_images)
                              if not p.teacher_in_loop else None)
    for kind in args.kinds.split(","):
        if kind == "distilled":
            train, val, setup, views = student.distillation_inputs(PREPARED, folder, TEACHER, folder, augmentation, p,
                                                                   num_classes, unlabeled_images)
        else:
            train, val, setup, views = student.scratch_inputs(PREPARED, folder, augmentation, p, num_classes)
        for seed in seeds:
            start = time.perf_counter()
            model, metrics, _ = student.train_one(p.widths, train, val, num_classes, p, seed, setup, views)
            record(args, kind, seed, model, metrics, test_images, test_labels, teacher_predictions, num_unlabeled,
                   time.perf_counter() - start)


def int8_file(model, test_images, test_labels) -> dict:
    """The student as the quantize stage converts it to int8 (calibrated on training images): its bytes and its
    test accuracy through the LiteRT interpreter, for a point of the size/accuracy curve without a pipeline run."""
    import tempfile

    from tinygray import litert
    from tinygray.compress import tflite

    params = load_params()
    representative = tflite.representative_dataset(prepared.read_split(PREPARED, "train")[0],
                                                   params.quantize.representative_samples, params.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "student_int8.tflite"
        path.write_bytes(tflite.convert(model, "int8", representative=representative))
        logits = litert.TFLiteModel(path).predict(test_images)
        return {"int8_bytes": path.stat().st_size,
                "int8_test_accuracy": round(float(np.mean(logits.argmax(axis=1) == test_labels)), 4)}


def record(args, kind: str, seed: int, model, metrics: dict | None, test_images, test_labels, teacher_predictions,
           num_unlabeled: int, seconds: float) -> None:
    """One JSON line for one student: its validation (None: not trained here) and test accuracy, fidelity, and
    which test images it got right (for McNemar's test against another student of the same seed)."""
    predicted = model.predict(test_images, batch_size=256, verbose=0).argmax(axis=1)
    line = {"name": args.name, "overrides": args.overrides, "kind": kind, "seed": seed,
            "unlabeled_images": num_unlabeled, "val_accuracy": metrics and metrics["val_accuracy"],
            "test_accuracy": round(float(np.mean(predicted == test_labels)), 4),
            "fidelity": benchmark.fidelity(predicted, teacher_predictions),
            "epochs": metrics and metrics["epochs"], "best_epoch": metrics and metrics["best_epoch"],
            "params": count_params(model)[0], "seconds": round(seconds, 1),
            "correct": np.packbits(predicted == test_labels).tobytes().hex()}
    if args.int8:
        line.update(int8_file(model, test_images, test_labels))
    with args.results.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"{args.name} {kind} seed {seed}: test {line['test_accuracy']:.4f} fidelity {line['fidelity']:.4f}", flush=True)


if __name__ == "__main__":
    main()

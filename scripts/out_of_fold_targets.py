"""Out-of-fold (cross-fitted) soft targets, for scripts/distillation_study.py: k teachers, each fine-tuned as
the train_teacher stage fine-tunes it but without one fold of the training images, each labelling every stored
view of the fold it never saw. A teacher fine-tuned on the images it then labels has memorised them (on the
brain MRI it is right on 97.8% of its own training views against 90% of validation images, its targets near
one-hot); out-of-fold targets carry its uncertainty on unseen images instead. Validation logits are the k
teachers' mean.

    python scripts/out_of_fold_targets.py OUT_DIR [--folds 2]
    python scripts/distillation_study.py RESULTS.jsonl oof --kinds distilled --targets OUT_DIR

Reads params.yaml, data/prepared and data/views (the pipeline's); writes OUT_DIR (the views, linked, and the
out-of-fold logits, as the soft_targets stage lays them out) and OUT_DIR.json (each teacher's accuracies).
Trains on TensorFlow, as the teacher stage does.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tinygray.data import prepared
from tinygray.distill import soft_targets
from tinygray.train import teacher
from tinygray.pipeline.atomic import atomic_output
from tinygray.data.augment import Augmentation, StoredViews
from tinygray.pipeline import layout
from tinygray.pipeline.params import load_params

PREPARED, VIEWS = layout.PREPARED, layout.VIEWS


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number of every image: each class dealt round-robin over the folds in a seeded order."""
    rng, fold = np.random.default_rng(seed), np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = np.arange(len(members)) % k
    return fold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args()
    params = load_params()
    augmentation = Augmentation.from_params(params.augment, params.seed)
    (images, labels), val = prepared.read_split(PREPARED, "train"), prepared.read_split(PREPARED, "val")
    images, num_classes = np.asarray(images), len(prepared.read_class_names(PREPARED))
    views = StoredViews(VIEWS, augmentation)
    fold = stratified_folds(labels, args.folds, params.seed)
    train_logits = np.empty((augmentation.views, len(labels), num_classes), dtype=np.float32)
    val_logits, report = [], {}
    for f in range(args.folds):
        start = time.perf_counter()
        inside, outside = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        model, metrics, _ = teacher.fit(params.train_teacher, params.seed, (images[inside], labels[inside]), val,
                                        num_classes, teacher.training_views(params.train_teacher, augmentation))
        for view in range(augmentation.views):
            train_logits[view, outside] = model.predict(views.view(images[outside], outside, view), batch_size=256,
                                                        verbose=0)
        val_logits.append(model.predict(np.asarray(val[0]), batch_size=256, verbose=0))
        report[f"fold_{f}"] = {"val_accuracy": metrics["val_accuracy"],
                               "held_out_view_accuracy": float(np.mean(train_logits[:, outside].argmax(-1) == labels[outside])),
                               "seconds": round(time.perf_counter() - start, 1)}
        print(f"fold {f}: {report[f'fold_{f}']}", flush=True)
    report["out_of_fold_view_accuracy"] = float(np.mean(train_logits.argmax(-1) == labels[None]))
    with atomic_output(args.out_dir) as staging:
        staging.mkdir()
        (staging / "views.npy").symlink_to(Path(VIEWS, "views.npy").resolve())
        soft_targets.write(staging, train_logits, np.mean(val_logits, axis=0), augmentation)
    args.out_dir.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(report)


if __name__ == "__main__":
    main()

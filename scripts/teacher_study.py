"""The teacher's accuracy against its fine-tuning epochs and input size, on the data the pipeline prepared.

    python scripts/teacher_study.py RESULTS.jsonl INPUT_SIZE:EPOCHS [INPUT_SIZE:EPOCHS ...] [key=value ...]
    python scripts/teacher_study.py RESULTS.jsonl --table

Each INPUT_SIZE:EPOCHS trains one teacher exactly as the train_teacher stage does (tinygray.train.teacher.fit, the
params.yaml of the workspace, train_teacher.input_size and .epochs replaced: early stopping on validation with the
workspace's patience decides where it ends), on data/prepared. One JSON line per teacher goes to RESULTS: the
validation accuracy after every fine-tuning epoch, the epoch early stopping on validation keeps, its test
accuracy with a 95% interval (reported, never used to choose), the seconds per epoch and the parameters.
Extra key=value pairs are train_teacher parameters (finetune_learning_rate=0.0003, ...). `--table` prints
the lines as a Markdown table. This is how docs/results.md's teacher table was measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = ["| input px | fine-tuning epochs (at most) | trained | kept (best on validation) | validation | test (95% interval) | s/epoch |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        low, high = row["test_interval_95"]
        out.append(f"| {row['input_size']} | {row['epochs']} | {row['trained_epochs']} | {row['best_epoch']} | {row['val_accuracy']:.2%} | "
                   f"{row['test_accuracy']:.2%} ({low:.1%}–{high:.1%}) | {row['seconds_per_epoch']:.0f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("settings", nargs="*", help="INPUT_SIZE:EPOCHS, then train_teacher key=value overrides")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if args.table:
        print(table(args.results))
        return
    runs = [s for s in args.settings if ":" in s and "=" not in s]
    overrides = dict(s.split("=", 1) for s in args.settings if "=" in s)
    if not runs:
        sys.exit("name at least one INPUT_SIZE:EPOCHS, e.g. 128:20")

    import numpy as np

    from tinygray.data import prepared
    from tinygray.evaluate import stats
    from tinygray.train import teacher
    from tinygray.data.augment import Augmentation
    from tinygray.pipeline import layout
    from tinygray.pipeline.params import load_params

    params = load_params()
    train, val, test = (prepared.read_split(layout.PREPARED, split) for split in ("train", "val", "test"))
    num_classes = len(prepared.read_class_names(layout.PREPARED))
    for run in runs:
        size, epochs = (int(part) for part in run.split(":"))
        p = params.train_teacher.model_copy(update={
            "input_size": size, "epochs": epochs,
            **{key: yaml.safe_load(value) for key, value in overrides.items()}})
        augmentation = teacher.training_views(p, Augmentation.from_params(params.augment, params.seed))
        started = time.time()
        model, metrics, histories = teacher.fit(p, params.seed, train, val, num_classes, augmentation)
        seconds = time.time() - started
        logits = model.predict(test[0], batch_size=128, verbose=0)
        correct = int((np.argmax(logits, axis=1) == test[1]).sum())
        trained_epochs = sum(len(h["loss"]) for h in histories)
        row = {"input_size": size, "epochs": epochs, "trained_epochs": len(histories[-1]["loss"]),
               "frozen_epochs": p.frozen_epochs, "patience": p.patience, "overrides": overrides,
               "val_curve": [round(v, 4) for v in histories[-1]["val_accuracy"]],
               "best_epoch": metrics["phases"][list(metrics["phases"])[-1]]["best_epoch"],
               "val_accuracy": metrics["val_accuracy"], "test_accuracy": round(correct / len(test[1]), 4),
               "test_interval_95": [round(v, 4) for v in stats.wilson_interval(correct, len(test[1]))],
               "test_images": len(test[1]), "seconds": round(seconds), "seconds_per_epoch": seconds / trained_epochs,
               "params": model.count_params()}
        with args.results.open("a") as out:
            out.write(json.dumps(row) + "\n")
        print(f"teacher {size} px, {epochs} epochs: validation {row['val_accuracy']:.4f} at epoch {row['best_epoch']}, "
              f"test {row['test_accuracy']:.4f}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()

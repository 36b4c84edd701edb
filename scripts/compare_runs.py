"""Two whole runs of the pipeline on the same prepared data, judged as issue 40 judges a change of defaults:
each run's distilled and scratch test accuracy over its seeds (mean ± std), whether the new means lie within
one seed std of the old, whether the new shipped file lies inside the old shipped file's 95% interval, and
McNemar's exact test of every new model against the old one of the same seed, and shipped against shipped.

    python scripts/compare_runs.py OLD NEW [--json out.json]

OLD and NEW are copies of a workspace's models/ and metrics/ after `dvc repro` (cp -r models metrics OLD/);
the test images are this workspace's data/prepared, which both runs must share (same preprocess parameters).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from compare_models import right_answers  # scripts/, beside this file
from tinygray.pipeline import layout


def shipped_file(run: Path) -> Path:
    name = json.loads((run / "metrics" / "benchmark.json").read_text())["shipped"]
    found = sorted((run / "models" / "tflite").rglob(f"{name}.tflite")) or sorted((run / "models").rglob(f"{name}.*"))
    if not found:
        raise FileNotFoundError(f"{run}: no model file for the shipped variant {name!r}")
    return found[0]


def compare(old: Path, new: Path, prepared_dir: Path) -> dict:
    from tinygray.data import prepared
    from tinygray.evaluate import stats

    images, labels = prepared.read_split(prepared_dir, "test")
    images = np.asarray(images)
    result: dict = {"test_images": int(len(labels))}
    for kind, folder in (("distilled", "student"), ("scratch", "scratch")):
        runs = {}
        for name, run in (("old", old), ("new", new)):
            seeds = json.loads((run / "metrics" / "benchmark.json").read_text())["seeds"][kind]
            runs[name] = {"mean": seeds["accuracy_mean"], "std": seeds["accuracy_std"], "accuracies": seeds["accuracies"]}
        runs["new_mean_within_one_old_std"] = abs(runs["new"]["mean"] - runs["old"]["mean"]) <= runs["old"]["std"] + 1e-9
        runs["mcnemar_by_seed"] = {
            seed: stats.mcnemar(right_answers(old / "models" / folder / f"seed_{seed}.keras", images, labels),
                                right_answers(new / "models" / folder / f"seed_{seed}.keras", images, labels))
            for seed in runs["old"]["accuracies"] if (new / "models" / folder / f"seed_{seed}.keras").is_file()}
        result[kind] = runs
    old_shipped, new_shipped = shipped_file(old), shipped_file(new)
    old_correct, new_correct = right_answers(old_shipped, images, labels), right_answers(new_shipped, images, labels)
    low, high = stats.wilson_interval(int(old_correct.sum()), len(labels))
    result["shipped"] = {
        "old": {"file": old_shipped.name, "bytes": old_shipped.stat().st_size, "accuracy": round(float(old_correct.mean()), 4),
                "interval_95": [round(low, 4), round(high, 4)]},
        "new": {"file": new_shipped.name, "bytes": new_shipped.stat().st_size, "accuracy": round(float(new_correct.mean()), 4)},
        "new_inside_old_interval": low <= float(new_correct.mean()) <= high,
        "mcnemar": stats.mcnemar(old_correct, new_correct)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--prepared", type=Path, default=layout.PREPARED)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    text = json.dumps(compare(args.old, args.new, args.prepared), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

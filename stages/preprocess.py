"""Stage 1: built-in images or your own image folder -> grayscale, resized, stratified train/val/test
under data/prepared (the test split: a dataset's official test set or held-out folder when it has one)."""
import csv
from pathlib import Path

import numpy as np

from tinygray.data import folders, prepared, unlabeled
from tinygray.data.preprocess import prepare_builtin, prepare_folder, remove_stale_staging, require_folder_dependency
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline.params import load_params
from tinygray.pipeline import layout
from tinygray.pipeline.tracking import stage_run

OUT, UNLABELED, DUPLICATES = layout.PREPARED, layout.UNLABELED, layout.DUPLICATES


def main() -> None:
    params = load_params()
    preprocess = params.preprocess
    folder_params = ("image_dir", "test_dir") if preprocess.dataset == "folder" else ()
    for folder_param in (*folder_params, "unlabeled_dir"):
        if getattr(preprocess, folder_param) is not None:
            require_folder_dependency(getattr(preprocess, folder_param), param=folder_param)
    if preprocess.unlabeled_dir is not None:
        unlabeled.scan(preprocess.unlabeled_dir)  # a missing or empty folder stops here, before any work
    for output in (OUT, UNLABELED):  # what a killed run left half-written
        remove_stale_staging(output)
    with stage_run("preprocess", params.run_params("preprocess")) as run, \
            atomic_output(OUT) as out, atomic_output(UNLABELED) as unlabeled_out:
        # Both outputs are staged and replace the last ones together, only when the whole stage succeeds; the
        # unlabelled images are decoded first, so a bad folder is refused before the labelled one is read.
        unlabeled_read = None if preprocess.unlabeled_dir is None else unlabeled.read(
            preprocess.unlabeled_dir, image_size=preprocess.image_size, resize=preprocess.resize,
            on_bad_file=preprocess.on_bad_file)
        skipped, num_groups, ignored = {}, {}, {}
        if preprocess.dataset == "folder":
            for folder in filter(None, (preprocess.image_dir, preprocess.test_dir)):
                ignored.update(folders.ignored_entries(Path(folder)))
            if ignored:
                print(f"preprocess: ignoring {len(ignored)} entr{'y' if len(ignored) == 1 else 'ies'} that are not in a "
                      f"class folder or are hidden: {', '.join(list(ignored)[:5])}{', ...' if len(ignored) > 5 else ''} "
                      "(all in metrics/preprocess.json, ignored_entries)", flush=True)
            labels, class_names, skipped, num_groups, found = prepare_folder(
                preprocess.image_dir, out, image_size=preprocess.image_size, val_fraction=preprocess.val_fraction,
                test_fraction=preprocess.test_fraction, seed=params.seed, on_bad_file=preprocess.on_bad_file,
                max_per_class=preprocess.max_per_class, test_dir=preprocess.test_dir, group_pattern=preprocess.group_pattern,
                resize=preprocess.resize, duplicates=preprocess.duplicates)
            test_source = "held-out folder" if preprocess.test_dir else "split off"
        else:
            labels, class_names, test_source, found = prepare_builtin(
                preprocess.dataset, out, image_size=preprocess.image_size, classes=preprocess.classes,
                max_per_class=preprocess.max_per_class, val_fraction=preprocess.val_fraction,
                test_fraction=preprocess.test_fraction, seed=params.seed, duplicates=preprocess.duplicates)
        unlabeled_found = {}
        if unlabeled_read is None:
            prepared.write_unlabeled(unlabeled_out, np.zeros((0, *prepared.read_split(out, "train")[0].shape[1:]), np.uint8))
        else:
            unlabeled_found = unlabeled.keep_apart(unlabeled_read, unlabeled_out,
                                                   held_out=[prepared.read_split(out, split)[0] for split in ("val", "test")])
        write_pairs(found.rows(class_names))
        duplicates = found.summary(class_names)
        print(duplicates_line(duplicates), flush=True)
        run.finish({
            "num_classes": len(class_names),
            "image_size": preprocess.image_size,
            "resize": preprocess.resize,
            "num_images": {name: int(len(y)) for name, y in labels.items()},
            "class_counts": {name: {class_names[c]: int(n) for c, n in zip(*np.unique(y, return_counts=True))}
                             for name, y in labels.items()},
            "test_source": test_source,
            **({"num_groups": num_groups} if num_groups else {}),
            "duplicates": duplicates,
            "skipped_files": skipped,
            **({"unlabeled": unlabeled_found} if unlabeled_found else {}),
            **({"ignored_entries": ignored} if ignored else {}),
        }, artifacts=[DUPLICATES])


def write_pairs(rows: list[dict]) -> None:
    """Every near-duplicate pair, one CSV row each (the header alone when there are none)."""
    with atomic_output(DUPLICATES) as staging, staging.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["first", "second", "first_split", "second_split", "first_label",
                                               "second_label", "mean_difference"])
        writer.writeheader()
        writer.writerows(rows)


def duplicates_line(summary: dict) -> str:
    """One line for the log: what was found and what became of it."""
    dropped = sum(n for part in summary["dropped"].values() for n in part.values())
    leaking = summary["leaking"]
    return (f"preprocess: {summary['pairs']} near-duplicate pair(s) in {summary['groups']} group(s), "
            f"{summary['label_conflicts']} with different labels; duplicates: {summary['policy']}, {dropped} dropped; "
            f"val/test images near-duplicating a training image: {leaking['val']}/{leaking['test']} "
            f"(pairs: {DUPLICATES})")


if __name__ == "__main__":
    main()

"""Stage 1: built-in images or your own image folder -> grayscale, resized, stratified train/val/test
under data/prepared (the test split: a dataset's official test set or held-out folder when it has one)."""
import numpy as np

from tinygray import data
from tinygray.params import stage_params
from tinygray.tracking import stage_run

OUT = "data/prepared"


def main() -> None:
    params = stage_params("preprocess")
    if params["dataset"] == "folder":
        for folder_param in ("image_dir", "test_dir"):
            if params[folder_param] is not None:
                data.require_folder_dependency(params[folder_param], param=folder_param)
    with stage_run("preprocess", params) as run:
        skipped, num_groups = {}, {}
        if params["dataset"] == "folder":
            labels, class_names, skipped, num_groups = data.prepare_folder(
                params["image_dir"], OUT, image_size=params["image_size"], val_fraction=params["val_fraction"],
                test_fraction=params["test_fraction"], seed=params["seed"], on_bad_file=params["on_bad_file"],
                max_per_class=params["max_per_class"], test_dir=params["test_dir"], group_pattern=params["group_pattern"],
                resize=params["resize"])
            test_source = "held-out folder" if params["test_dir"] else "split off"
        else:
            labels, class_names, test_source = data.prepare_builtin(
                params["dataset"], OUT, image_size=params["image_size"], classes=params["classes"],
                max_per_class=params["max_per_class"], val_fraction=params["val_fraction"],
                test_fraction=params["test_fraction"], seed=params["seed"])
        run.finish({
            "num_classes": len(class_names),
            "image_size": params["image_size"],
        "resize": params["resize"],
            "num_images": {name: int(len(y)) for name, y in labels.items()},
            "class_counts": {name: {class_names[c]: int(n) for c, n in zip(*np.unique(y, return_counts=True))}
                             for name, y in labels.items()},
            "test_source": test_source,
            **({"num_groups": num_groups} if num_groups else {}),
            "skipped_files": skipped,
        })


if __name__ == "__main__":
    main()

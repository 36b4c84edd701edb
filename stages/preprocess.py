"""Stage 1: built-in images or your own image folder -> grayscale, resized, stratified train/val/test
under data/prepared."""
import numpy as np

from tinygray import data
from tinygray.params import stage_params
from tinygray.tracking import stage_run

OUT = "data/prepared"

params = stage_params("preprocess")
if params["dataset"] == "folder":
    data.require_folder_dependency(params["image_dir"])
with stage_run("preprocess", params) as run:
    skipped = {}
    if params["dataset"] == "folder":
        labels, class_names, skipped = data.prepare_folder(
            params["image_dir"], OUT, image_size=params["image_size"], val_fraction=params["val_fraction"],
            test_fraction=params["test_fraction"], seed=params["seed"], on_bad_file=params["on_bad_file"],
            max_per_class=params["max_per_class"])
    else:
        images, all_labels = data.load_builtin(params["dataset"])
        images, all_labels, class_names = data.select_classes(images, all_labels, params["classes"])
        if params["max_per_class"]:
            keep = data.cap_per_class(all_labels, params["max_per_class"], params["seed"])
            images, all_labels = images[keep], all_labels[keep]
        images = data.resize(data.to_grayscale(images), params["image_size"])
        split_indices = data.stratified_split(all_labels, params["val_fraction"], params["test_fraction"],
                                              params["seed"])
        data.write_prepared(OUT, {name: (images[idx], all_labels[idx]) for name, idx in split_indices.items()},
                            class_names)
        labels = {name: all_labels[idx] for name, idx in split_indices.items()}
    run.finish({
        "num_classes": len(class_names),
        "image_size": params["image_size"],
        "num_images": {name: int(len(y)) for name, y in labels.items()},
        "class_counts": {name: {class_names[c]: int(n) for c, n in zip(*np.unique(y, return_counts=True))}
                         for name, y in labels.items()},
        "skipped_files": skipped,
    })

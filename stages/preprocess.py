"""Stage 1: built-in images -> grayscale, resized, stratified train/val/test under data/prepared."""
import numpy as np

from tinygray import data
from tinygray.params import stage_params
from tinygray.tracking import stage_run

OUT = "data/prepared"

params = stage_params("preprocess")
with stage_run("preprocess", params) as run:
    images, labels = data.load_builtin(params["dataset"])
    images, labels, class_names = data.select_classes(images, labels, params["classes"])
    if params["max_per_class"]:
        keep = data.cap_per_class(labels, params["max_per_class"], params["seed"])
        images, labels = images[keep], labels[keep]
    images = data.resize(data.to_grayscale(images), params["image_size"])
    split_indices = data.stratified_split(labels, params["val_fraction"], params["test_fraction"], params["seed"])
    splits = {name: (images[idx], labels[idx]) for name, idx in split_indices.items()}
    data.write_prepared(OUT, splits, class_names)
    run.finish({
        "num_classes": len(class_names),
        "image_size": params["image_size"],
        "num_images": {name: int(len(y)) for name, (_, y) in splits.items()},
        "class_counts": {name: {class_names[c]: int(n) for c, n in zip(*np.unique(y, return_counts=True))}
                         for name, (_, y) in splits.items()},
    })

"""Where the pipeline keeps things: every path a stage reads or writes, named once, relative to the
repository root where DVC runs the stages. The stages, the benchmark and predict take their paths from
here, and tests/test_layout.py checks that every data path in dvc.yaml is one of these, so a path is
never spelled twice in the code."""
from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

# data
PREPARED = Path("data/prepared")                # <split>/images.npy, <split>/labels.npy, classes.json
CLASSES = PREPARED / "classes.json"
UNLABELED = Path("data/unlabeled")              # images.npy: preprocess.unlabeled_dir's images (none without it)
VIEWS = Path("data/views")                      # every augmented view of every training image
SOFT_TARGETS = Path("data/soft_targets")        # the teacher's logits for every view

# models
MODELS = Path("models")
TFLITE = MODELS / "tflite"
# one folder per student family (train_family@<name>): <name>.keras, <name>_int8.tflite and its contract, each
# control's <name>_<control>_int8.tflite (FAMILY_CONTROLS), validation.json (what benchmark.shipped: auto reads)
FAMILIES = MODELS / "families"
FAMILY_VALIDATION = "validation.json"

# results
METRICS = Path("metrics")
HISTORY = METRICS / "history"
DUPLICATES = METRICS / "preprocess_duplicates.csv"
# the few figures a reviewer compares, written by the benchmark, in one row that fits a terminal:
# `dvc metrics show metrics/headline.json` (the stages' own metrics/<stage>.json are declared metrics too)
HEADLINE = METRICS / "headline.json"
FRONTIER_DATA = METRICS / "plots" / "frontier.json"
REPORTS = Path("reports")


def model(name: str) -> Path:
    """The Keras file of a pipeline model: teacher, student, scratch, pruned, ... (the students: the seed
    each stage selected)."""
    return MODELS / f"{name}.keras"


def seeds(name: str) -> Path:
    """The folder of every seed a student stage trained (seeds(name) / f"seed_{seed}.keras")."""
    return MODELS / name


def tflite_dir(name: str) -> Path:
    return TFLITE / name


def tflite(name: str, mode: str) -> Path:
    return tflite_dir(name) / f"{name}_{mode}.tflite"


def family_dir(name: str) -> Path:
    return FAMILIES / name


# A family's controls (its `controls` list), each the family's network trained the same way but for one thing:
# random: from random weights, labels alone; labels: the teacher's weights, labels alone (no distillation);
# no_unlabeled: distilled without the unlabelled images. Their files: <name>_<control>_int8.tflite.
FAMILY_CONTROLS = ("random", "labels", "no_unlabeled")


def family_control(name: str, control: str) -> str:
    """The network name of a family's control: <name>_<control>."""
    return f"{name}_{control}"


def family_tflite(variant: str) -> Path:
    """A family's int8 file by its variant name: <name>_int8 or <name>_<control>_int8."""
    name = variant.removesuffix("_int8")
    for control in FAMILY_CONTROLS:
        name = name.removesuffix(f"_{control}")
    return family_dir(name) / f"{variant}.tflite"


def stage_metrics(stage: str) -> Path:
    """metrics/<stage>.json, quantize@<model> included."""
    return METRICS / f"{stage}.json"


def history(name: str) -> Path:
    """The per-epoch CSV of a training (its PNG lies beside it)."""
    return HISTORY / f"{name}.csv"

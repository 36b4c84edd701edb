"""One loader for params.yaml: every stage reads its own section, validated before any work starts."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tinygray import backend, distribute, duplicates, variants
from tinygray.pipeline import layout

PARAMS_FILE = layout.PARAMS
MAX_SEED = 2**31 - 1
# The teacher sees at most 224 px (Lite0's native size) and the student averages or strides the image down, so a
# larger side only multiplies the stored images and views (views x images x side**2 bytes: 8 x 2,000 at 512 px is
# 4 GB) for nothing a phone-sized model can use. Measured up to 256 (README, 'Image size').
MAX_IMAGE_SIZE = 512


class ParamsError(ValueError):
    """A parameter is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True)
class Spec:
    kind: type | tuple[type, ...]
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    choices: tuple | None = None
    nullable: bool = False
    item_kind: type | None = None  # for lists
    item_minimum: int = 0          # smallest value an item may take


def _positive_int() -> Spec:
    return Spec(int, minimum=1)


def _fraction(exclusive_max: bool = False) -> Spec:
    return Spec((int, float), minimum=0.0, maximum=1.0, exclusive_max=exclusive_max)


TRAINING = {
    "epochs": _positive_int(),
    "batch_size": _positive_int(),
    "learning_rate": Spec((int, float), minimum=0.0, exclusive_min=True),
    "patience": _positive_int(),
}

SPECS: dict[str, dict[str, Spec]] = {
    "preprocess": {
        "dataset": Spec(str, choices=("mnist", "digits", "fashion_mnist", "folder")),
        "image_dir": Spec(str),  # dataset folder: one subfolder of images per class
        "test_dir": Spec(str, nullable=True),  # dataset folder: held-out test images, same class subfolders
        "group_pattern": Spec(str, nullable=True),  # dataset folder: regex over file names, one group per match
        "on_bad_file": Spec(str, choices=("fail", "skip")),
        "duplicates": Spec(str, choices=duplicates.POLICIES),
        "image_size": Spec(int, minimum=8, maximum=MAX_IMAGE_SIZE),
        "resize": Spec(str, choices=("squash", "crop", "pad")),
        "classes": Spec(list, nullable=True, item_kind=int),
        "val_fraction": Spec((int, float), minimum=0.0, maximum=0.5, exclusive_min=True),
        "test_fraction": Spec((int, float), minimum=0.0, maximum=0.5, exclusive_min=True),
        "max_per_class": Spec(int, minimum=3, nullable=True),
    },
    "train_teacher": {
        "backbone": Spec(str, choices=("cnn", "efficientnet_lite0", "mobilenet_v2", "vgg16")),
        "weights": Spec(str),
        "input_size": Spec((int, str)),  # a side in [8, 1024] or "auto", checked in _check_relations
        "dropout": _fraction(exclusive_max=True),
        "frozen_epochs": Spec(int, minimum=0),
        "finetune_learning_rate": Spec((int, float), minimum=0.0, exclusive_min=True),
        "unfreeze_top_layers": Spec(int, minimum=1, nullable=True),
        "cnn_widths": Spec(list, item_kind=int, item_minimum=1),
        "cnn_convs_per_block": _positive_int(),
        "augment": Spec(bool),
        "mixed_precision": Spec(bool),
        "distribute": Spec(str, choices=tuple(distribute.STRATEGIES)),
        **TRAINING,
    },
    "augment": {  # the training views shared by soft_targets and every student stage (tinygray/augment.py)
        "views": _positive_int(),
        "max_rotation": Spec((int, float), minimum=0.0, maximum=180.0),
        "max_shift": Spec((int, float), minimum=0.0, maximum=0.5),
        "max_scale": _fraction(exclusive_max=True),
        "flip": Spec(bool),
    },
    "soft_targets": {
        "batch_size": _positive_int(),
    },
    "train_student": {
        "widths": Spec(list, item_kind=int, item_minimum=1),
        "convs_per_block": _positive_int(),
        "input_size": Spec(int, minimum=8, nullable=True),  # must divide preprocess.image_size: student.build checks
        "backend": Spec(str, choices=backend.BACKENDS),
        "temperature": Spec((int, float), minimum=0.0, exclusive_min=True),
        "alpha": _fraction(),
        "dkd_beta": Spec((int, float), minimum=0.0, nullable=True),
        "num_seeds": _positive_int(),
        "assistants": Spec(list),
        "schedule": Spec(str, choices=("plateau", "cosine")),
        "teacher_in_loop": Spec(bool),
        "mixup": Spec((int, float), minimum=0.0),
        **TRAINING,
    },
    "prune": {
        "sparsities": Spec(list),        # fractions in [0, 1), checked in _check_relations
        "filter_fractions": Spec(list),
        "max_val_drop": _fraction(),
        "epochs": _positive_int(),
        "ramp_epochs": _positive_int(),
        "mask_update_steps": _positive_int(),
        "batch_size": _positive_int(),
        "learning_rate": Spec((int, float), minimum=0.0, exclusive_min=True),
    },
    "qat": {
        "source": Spec(str, choices=("student", "pruned", "pruned_filters")),
        "epochs": _positive_int(),
        "batch_size": _positive_int(),
        "learning_rate": Spec((int, float), minimum=0.0, exclusive_min=True),
    },
    "quantize": {
        "representative_samples": _positive_int(),
        "max_int8_accuracy_drop": _fraction(),
    },
    "sweep": {  # read by scripts/frontier_sweep.py only, not by a stage
        "student_widths": Spec(list),
        "num_seeds": _positive_int(),
    },
    "benchmark": {
        "warmup_runs": Spec(int, minimum=0),
        "timed_runs": _positive_int(),
        "rounds": _positive_int(),
        "num_threads": Spec(list, item_kind=int, item_minimum=1),
        "shipped": Spec(str),
    },
}


def load_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    try:
        with path.open() as f:
            params = yaml.load(f, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections")
    unknown = sorted(set(params) - set(SPECS) - {"seed"})
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {unknown}; known: {sorted(SPECS)}")
    return params


def stage_params(stage: str, path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """The stage's section plus the global `seed`, after checking every section of the file: a bad value
    anywhere stops the first stage that runs, before any work, not the stage that reads it an hour later."""
    try:
        params = load_params(path)
        sections = {name: _section(name, params, path) for name in SPECS}
    except ParamsError as error:
        raise ParamsError(f"{error}{removed_outputs_hint()}") from None
    return sections[stage]


def removed_outputs_hint() -> str:
    """For an error that stops a stage DVC started: DVC deletes a stage's outputs before it runs the command, so
    by the time a stage can refuse, the last good outputs are gone from the workspace (not from DVC's cache)."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    return (f". DVC removed stage {stage}'s outputs before starting it: once this is fixed, `dvc repro` makes them "
            "again; to put back the last ones as they were, `dvc checkout`")


def _section(stage: str, params: dict[str, Any], path: Path | str) -> dict[str, Any]:
    if stage not in params:
        raise ParamsError(f"{path}: missing section '{stage}'")
    if not isinstance(params[stage] or {}, dict):
        raise ParamsError(f"{path}: section '{stage}' must be a mapping of parameters, got {params[stage]!r}")
    section = dict(params[stage] or {})
    specs = SPECS[stage]
    unknown = sorted(set(section) - set(specs))
    if unknown:
        raise ParamsError(f"{path}: unknown parameter(s) {[f'{stage}.{k}' for k in unknown]}; "
                          f"known: {sorted(specs)}")
    for key, spec in specs.items():
        if key not in section:
            raise ParamsError(f"{path}: missing parameter '{stage}.{key}'")
        _check(f"{stage}.{key}", section[key], spec, path)
    _check_relations(stage, section, path)
    seed = params.get("seed", 0)
    # scikit-learn's split and NumPy take seeds below 2**32, and students use seed + k: refuse here, by name
    _check("seed", seed, Spec(int, minimum=0, maximum=MAX_SEED), path)
    section["seed"] = seed
    return section


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice: YAML would silently keep the last one."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key(s) {duplicates}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _check_preprocess(section: dict[str, Any], path: Path | str) -> None:
    if section["val_fraction"] + section["test_fraction"] >= 1.0:
        raise ParamsError(f"{path}: parameters 'preprocess.val_fraction' + 'preprocess.test_fraction' "
                          f"({section['val_fraction']} + {section['test_fraction']}) must leave images for training")
    if section["group_pattern"] is not None:
        try:
            re.compile(section["group_pattern"])
        except re.error as error:
            raise ParamsError(f"{path}: parameter 'preprocess.group_pattern' is not a valid regular expression "
                              f"({error}), got {section['group_pattern']!r}") from None
    if section["dataset"] != "folder":
        if section["group_pattern"] is not None:
            raise ParamsError(f"{path}: parameter 'preprocess.group_pattern' groups the files of an image folder "
                              f"(preprocess.dataset 'folder'); set it to null, got {section['group_pattern']!r}")
        if section["test_dir"] is not None:
            raise ParamsError(f"{path}: parameter 'preprocess.test_dir' is for preprocess.dataset 'folder' (the "
                              f"built-in datasets bring their own test split); set it to null, got "
                              f"{section['test_dir']!r}")
        return
    if section["test_dir"] is not None and not Path(section["test_dir"]).is_dir():
        raise ParamsError(f"{path}: parameter 'preprocess.test_dir' must be an existing folder with the same class "
                          f"subfolders as preprocess.image_dir, or null, got {section['test_dir']!r} "
                          f"(relative to {Path.cwd()})")
    if not Path(section["image_dir"]).is_dir():
        raise ParamsError(f"{path}: parameter 'preprocess.image_dir' must be an existing folder with one "
                          f"subfolder of images per class when preprocess.dataset is 'folder', got "
                          f"{section['image_dir']!r} (relative to {Path.cwd()})")
    if section["classes"] is not None:
        raise ParamsError(f"{path}: parameter 'preprocess.classes' selects labels of the built-in datasets; with "
                          "preprocess.dataset 'folder' set it to null (every class subfolder is a class), "
                          f"got {section['classes']!r}")


def _positive_ints(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _check_relations(stage: str, section: dict[str, Any], path: Path | str) -> None:
    if stage == "preprocess":
        _check_preprocess(section, path)
    if stage == "train_student" and section["mixup"] and not section["teacher_in_loop"]:
        raise ParamsError(f"{path}: parameter 'train_student.mixup' ({section['mixup']}) needs "
                          "'train_student.teacher_in_loop: true': no teacher logits are stored for mixed images")
    if stage == "train_student" and section["teacher_in_loop"] and section["backend"] != "tensorflow":
        raise ParamsError(f"{path}: parameter 'train_student.teacher_in_loop: true' runs the teacher at every step, "
                          "and the teacher trains and infers on TensorFlow only (tinygray/backend.py); set "
                          "'train_student.backend: tensorflow'")
    if stage == "train_student" and section["teacher_in_loop"] and section["assistants"]:
        raise ParamsError(f"{path}: parameter 'train_student.assistants' works from stored logits; with "
                          "'train_student.teacher_in_loop: true' set it to []")
    size = section.get("input_size") if stage == "train_teacher" else None
    if size is not None and not (size == "auto" or isinstance(size, int) and 8 <= size <= 1024):
        raise ParamsError(f"{path}: parameter 'train_teacher.input_size' must be 'auto' or a side between 8 and 1024 "
                          f"pixels, got {size!r}")
    if stage == "benchmark" and section["shipped"] not in variants.shippable():
        raise ParamsError(f"{path}: parameter 'benchmark.shipped' must name one of the TFLite variants "
                          f"{variants.shippable()}, got {section['shipped']!r}")
    if stage == "sweep" and not all(_positive_ints(widths) for widths in section["student_widths"]):
        raise ParamsError(f"{path}: parameter 'sweep.student_widths' must be a list of width lists of positive "
                          f"integers such as [[8, 16], [12, 24, 32]], got {section['student_widths']!r}")
    if stage == "train_student" and not all(_positive_ints(widths) for widths in section["assistants"]):
        raise ParamsError(f"{path}: parameter 'train_student.assistants' must be a list of width lists such as "
                          f"[[32, 64, 64]], got {section['assistants']!r}")
    if stage == "benchmark" and not _positive_ints(section["num_threads"]):
        raise ParamsError(f"{path}: parameter 'benchmark.num_threads' must be a non-empty list of positive "
                          f"thread counts, got {section['num_threads']!r}")
    for key in ("sparsities", "filter_fractions") if stage == "prune" else ():
        values = section[key]
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1 for v in values):
            raise ParamsError(f"{path}: parameter 'prune.{key}' must be a non-empty list of fractions in [0, 1), the "
                              f"levels to try from the most compression down, got {values!r}")
    if stage == "prune" and section["ramp_epochs"] > section["epochs"]:
        raise ParamsError(f"{path}: parameter 'prune.ramp_epochs' ({section['ramp_epochs']}) must be <= "
                          f"'prune.epochs' ({section['epochs']})")
    if stage == "train_teacher" and section["weights"] not in ("imagenet", "none") \
            and not Path(section["weights"]).is_file():
        raise ParamsError(f"{path}: parameter 'train_teacher.weights' must be 'imagenet', 'none' or the path "
                          f"of a local weights file; no file at {section['weights']!r}")


def _check(name: str, value: Any, spec: Spec, path: Path | str) -> None:
    def fail(why: str) -> None:
        raise ParamsError(f"{path}: parameter '{name}' {why}, got {value!r}")

    if value is None:
        if not spec.nullable:
            fail("must be set")
        return
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        fail(f"must be of type {'/'.join(k.__name__ for k in kinds)}")
    if isinstance(value, float) and not math.isfinite(value):
        fail("must be a finite number")
    if spec.choices is not None and value not in spec.choices:
        fail(f"must be one of {list(spec.choices)}")
    if spec.item_kind is not None:
        if not value or any(isinstance(v, bool) or not isinstance(v, spec.item_kind) or v < spec.item_minimum
                            for v in value):
            fail(f"must be a non-empty list of {spec.item_kind.__name__} >= {spec.item_minimum}")
    if spec.minimum is not None and (value <= spec.minimum if spec.exclusive_min else value < spec.minimum):
        fail(f"must be {'>' if spec.exclusive_min else '>='} {spec.minimum}")
    if spec.maximum is not None and (value >= spec.maximum if spec.exclusive_max else value > spec.maximum):
        fail(f"must be {'<' if spec.exclusive_max else '<='} {spec.maximum}")


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train_student": {"alpha": 0.5}} -> {"train_student.alpha": 0.5}: DVC's and MLflow's parameter names."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

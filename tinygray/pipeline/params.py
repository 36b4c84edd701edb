"""params.yaml as typed, validated objects: one pydantic model per section, all checked before a stage starts.

Stages read `load_params().train_student.alpha`; a typo is an AttributeError in the code and a clear error
naming the parameter in params.yaml. Pydantic checks types and ranges; `_explain` turns its errors into one
sentence that names the file and the parameter (tests/test_params.py and tests/test_bad_input.py hold the
wording); the relations between parameters are each section's `after` validator."""
from __future__ import annotations

import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      model_validator)

from tinygray.pipeline import choices, layout

PARAMS_FILE = layout.PARAMS
# scikit-learn's split and NumPy take seeds below 2**32, and students use seed + k: refuse here, by name
MAX_SEED = 2**31 - 1
# The teacher sees at most 224 px (Lite0's native size) and the student averages or strides the image down, so a
# larger side only multiplies the stored images and views (views x images x side**2 bytes: 8 x 2,000 at 512 px is
# 4 GB) for nothing a phone-sized model can use (docs/image-size.md).
MAX_IMAGE_SIZE = 512

Number = Union[StrictInt, Annotated[StrictFloat, Field(allow_inf_nan=False)]]  # an int stays an int (MLflow: "8")
PositiveInt = Annotated[StrictInt, Field(ge=1)]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Rate = Annotated[Number, Field(gt=0)]
Widths = Annotated[list[PositiveInt], Field(min_length=1, description="a non-empty list of int >= 1")]
# 0 would make a "pruned" file with nothing removed, reported as pruned: refused
Levels = Annotated[list[Annotated[Number, Field(gt=0, lt=1)]], Field(
    min_length=1, description="a non-empty list of fractions in (0, 1), the levels to try from the most compression down")]


class ParamsError(ValueError):
    """A parameter is missing, unknown or out of range; the message names it."""


class Section(BaseModel):
    """One section of params.yaml: every key required, none unknown, no silent conversion (`32.0` is not an int)."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def values(self, *keys: str) -> dict[str, Any]:
        """The section (or the named keys) as a plain dict: MLflow's parameters of a stage run."""
        return self.model_dump(include=set(keys) or None)


class Preprocess(Section):
    dataset: Literal["mnist", "digits", "fashion_mnist", "folder"]
    image_dir: StrictStr  # dataset folder: one subfolder of images per class
    test_dir: StrictStr | None  # dataset folder: held-out test images, same class subfolders
    unlabeled_dir: StrictStr | None  # images without labels, any nesting, for the distilled students (tinygray.data.unlabeled)
    group_pattern: StrictStr | None  # dataset folder: regex over file names, one group per match
    on_bad_file: Literal["fail", "skip"]
    duplicates: Literal[choices.DUPLICATE_POLICIES]
    image_size: Annotated[StrictInt, Field(ge=8, le=MAX_IMAGE_SIZE)]
    resize: Literal["squash", "crop", "pad"]
    classes: Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(
        min_length=1, description="a non-empty list of int >= 0")] | None
    val_fraction: Annotated[Number, Field(gt=0, le=0.5)]
    test_fraction: Annotated[Number, Field(gt=0, le=0.5)]
    max_per_class: Annotated[StrictInt, Field(ge=3)] | None

    @model_validator(mode="after")
    def _relations(self) -> Preprocess:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"parameters 'preprocess.val_fraction' + 'preprocess.test_fraction' ({self.val_fraction} "
                             f"+ {self.test_fraction}) must leave images for training")
        if self.group_pattern is not None:
            try:
                re.compile(self.group_pattern)
            except re.error as error:
                raise ValueError(f"parameter 'preprocess.group_pattern' is not a valid regular expression ({error}), "
                                 f"got {self.group_pattern!r}") from None
        if self.unlabeled_dir is not None and not Path(self.unlabeled_dir).is_dir():
            raise ValueError("parameter 'preprocess.unlabeled_dir' must be an existing folder of images (any nesting), "
                             f"or null, got {self.unlabeled_dir!r} (relative to {Path.cwd()})")
        if self.unlabeled_dir is not None:
            labelled = {"preprocess.test_dir": self.test_dir}
            if self.dataset == "folder":
                labelled["preprocess.image_dir"] = self.image_dir
            unlabeled = Path(os.path.realpath(self.unlabeled_dir))
            for name, folder in labelled.items():
                if folder is None:
                    continue
                other = Path(os.path.realpath(folder))
                if unlabeled.is_relative_to(other) or other.is_relative_to(unlabeled):
                    raise ValueError(f"parameter 'preprocess.unlabeled_dir' ({self.unlabeled_dir!r}) and '{name}' "
                                     f"({folder!r}) overlap: the labelled images would come back as unlabelled ones and "
                                     "count twice; the images without labels need a folder of their own")
        if self.dataset != "folder":
            if self.group_pattern is not None:
                raise ValueError("parameter 'preprocess.group_pattern' groups the files of an image folder "
                                 f"(preprocess.dataset 'folder'); set it to null, got {self.group_pattern!r}")
            if self.test_dir is not None:
                raise ValueError("parameter 'preprocess.test_dir' is for preprocess.dataset 'folder' (the built-in "
                                 f"datasets bring their own test split); set it to null, got {self.test_dir!r}")
            return self
        if self.test_dir is not None and not Path(self.test_dir).is_dir():
            raise ValueError("parameter 'preprocess.test_dir' must be an existing folder with the same class subfolders "
                             f"as preprocess.image_dir, or null, got {self.test_dir!r} (relative to {Path.cwd()})")
        if not Path(self.image_dir).is_dir():
            raise ValueError("parameter 'preprocess.image_dir' must be an existing folder with one subfolder of "
                             "images per class when preprocess.dataset is 'folder', got "
                             f"{self.image_dir!r} (relative to {Path.cwd()})")
        if self.classes is not None:
            raise ValueError("parameter 'preprocess.classes' selects labels of the built-in datasets; with "
                             "preprocess.dataset 'folder' set it to null (every class subfolder is a class), "
                             f"got {self.classes!r}")
        return self


class Training(Section):
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: Rate
    patience: PositiveInt


class TrainTeacher(Training):
    backbone: Literal["cnn", "efficientnet_lite0", "mobilenet_v2", "vgg16"]
    weights: StrictStr
    input_size: Annotated[Union[Literal["auto"], Annotated[StrictInt, Field(ge=8, le=1024)]], Field(
        description="'auto' or a side between 8 and 1024 pixels")]
    dropout: Annotated[Number, Field(ge=0, lt=1)]
    frozen_epochs: Annotated[StrictInt, Field(ge=0)]
    finetune_learning_rate: Rate
    unfreeze_top_layers: PositiveInt | None
    cnn_widths: Widths
    cnn_convs_per_block: PositiveInt
    augment: StrictBool
    mixed_precision: StrictBool
    distribute: Literal[tuple(choices.STRATEGIES)]

    @model_validator(mode="after")
    def _weights_exist(self) -> TrainTeacher:
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ValueError("parameter 'train_teacher.weights' must be 'imagenet', 'none' or the path of a local "
                             f"weights file; no file at {self.weights!r}")
        return self


class Augment(Section):
    """The training views shared by soft_targets and every student stage (tinygray/data/augment.py)."""
    views: PositiveInt
    max_rotation: Annotated[Number, Field(ge=0, le=180)]
    max_shift: Annotated[Number, Field(ge=0, le=0.5)]
    max_scale: Annotated[Number, Field(ge=0, lt=1)]
    flip: StrictBool


class SoftTargets(Section):
    batch_size: PositiveInt


class TrainStudent(Training):
    widths: Widths
    convs_per_block: PositiveInt
    input_size: Annotated[StrictInt, Field(ge=8)] | None  # must divide preprocess.image_size: student.build checks
    teacher_blocks: Annotated[StrictInt, Field(ge=1, le=16)] | None  # EfficientNet-Lite0's 16 blocks (teacher_slice)
    backend: Literal[choices.BACKENDS]
    temperature: Rate
    alpha: Fraction
    dkd_beta: Annotated[Number, Field(ge=0)] | None
    num_seeds: PositiveInt
    assistants: Annotated[list[Widths], Field(description="a list of width lists such as [[32, 64, 64]]")]
    schedule: Literal["plateau", "cosine"]
    teacher_in_loop: StrictBool
    mixup: Annotated[Number, Field(ge=0)]

    @model_validator(mode="after")
    def _relations(self) -> TrainStudent:
        if self.mixup and not self.teacher_in_loop:
            raise ValueError(f"parameter 'train_student.mixup' ({self.mixup}) needs 'train_student.teacher_in_loop: "
                             "true': no teacher logits are stored for mixed images")
        if self.teacher_in_loop and self.backend != "tensorflow":
            raise ValueError("parameter 'train_student.teacher_in_loop: true' runs the teacher at every step, and the "
                             "teacher trains and infers on TensorFlow only (tinygray/train/backend.py); set "
                             "'train_student.backend: tensorflow'")
        if self.teacher_blocks is not None and self.assistants:
            raise ValueError("parameter 'train_student.assistants' chains narrower CNN students; a student cut from the "
                             "teacher ('train_student.teacher_blocks') learns from the teacher itself: set it to []")
        if self.teacher_in_loop and self.assistants:
            raise ValueError("parameter 'train_student.assistants' works from stored logits; with "
                             "'train_student.teacher_in_loop: true' set it to []")
        return self


class Prune(Section):
    sparsities: Levels
    filter_fractions: Levels
    max_val_drop: Fraction
    epochs: PositiveInt
    ramp_epochs: PositiveInt
    mask_update_steps: PositiveInt
    batch_size: PositiveInt
    learning_rate: Rate

    @model_validator(mode="after")
    def _ramp_within_epochs(self) -> Prune:
        if self.ramp_epochs > self.epochs:
            raise ValueError(f"parameter 'prune.ramp_epochs' ({self.ramp_epochs}) must be <= 'prune.epochs' "
                             f"({self.epochs})")
        return self


class Qat(Section):
    source: Literal["student", "pruned", "pruned_filters"]
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: Rate


class Quantize(Section):
    representative_samples: PositiveInt
    max_int8_accuracy_drop: Fraction


class Benchmark(Section):
    warmup_runs: Annotated[StrictInt, Field(ge=0)]
    timed_runs: PositiveInt
    rounds: PositiveInt
    num_threads: Annotated[list[PositiveInt], Field(
        min_length=1, description="a non-empty list of positive thread counts")]
    shipped: StrictStr
    max_accuracy_drop: Annotated[Number, Field(ge=0, lt=1)]
    # benchmark.shipped is checked against the variants (a family's file too) in Params._shipped_family


class Sweep(Section):
    """Read by scripts/frontier_sweep.py only, not by a stage."""
    student_widths: Annotated[list[Widths], Field(
        description="a list of width lists of positive integers such as [[8, 16], [12, 24, 32]]")]
    teacher_blocks: Annotated[list[Annotated[StrictInt, Field(ge=1, le=16)]], Field(
        description="a list of block counts between 1 and 16 such as [3, 5, 8]")]
    num_seeds: PositiveInt


# A family's name becomes its stage (train_family@<name>), its folder and its file (<name>_int8.tflite)
FAMILY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Family(Section):
    """One student family of the frontier (tinygray/models/families.py): the teacher cut after `blocks` of its 16
    blocks and pruned to `width` of every channel group, distilled on the stored views (and the unlabelled
    images); input_size null takes train_student.input_size; controls trains the same network but for one thing
    (layout.FAMILY_CONTROLS: random weights, labels alone, or without the unlabelled images) beside it."""
    blocks: Annotated[StrictInt, Field(ge=1, le=16)]
    width: Annotated[Number, Field(gt=0, le=1)]
    input_size: Annotated[StrictInt, Field(ge=8)] | None = None
    controls: Annotated[list[Literal[layout.FAMILY_CONTROLS]], Field(
        description=f"a list of controls, each one of {list(layout.FAMILY_CONTROLS)} at most once")] = []

    @model_validator(mode="after")
    def _controls_once(self) -> Family:
        if len(set(self.controls)) != len(self.controls):
            raise ValueError(f"a control is named twice in {self.controls}")
        return self


class Params(Section):
    """The whole file. Every section is checked whenever any stage loads it: a bad value anywhere stops the
    first stage that runs, before any work, not the stage that reads it an hour later."""
    preprocess: Preprocess
    train_teacher: TrainTeacher
    augment: Augment
    soft_targets: SoftTargets
    train_student: TrainStudent
    prune: Prune
    qat: Qat
    quantize: Quantize
    sweep: Sweep
    benchmark: Benchmark
    # the frontier's student families by name (train_family@<name>); {} (the default run): none
    families: dict[str, Family] = Field(default_factory=dict)
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]  # required like every key: a missing seed is no choice

    @model_validator(mode="after")
    def _student_from_teacher(self) -> Params:
        teacher, blocks = self.train_teacher, self.train_student.teacher_blocks
        if blocks is not None and (teacher.backbone != "efficientnet_lite0" or teacher.weights == "none"):
            raise ValueError(f"parameter 'train_student.teacher_blocks' ({blocks}) cuts the student from the teacher's "
                             "EfficientNet-Lite0 with its ImageNet-initialised weights; this teacher is "
                             f"'train_teacher.backbone: {teacher.backbone}' with 'train_teacher.weights: {teacher.weights}'. "
                             "Set the backbone to efficientnet_lite0 with weights imagenet, or teacher_blocks to null")
        return self

    @model_validator(mode="after")
    def _families(self) -> Params:
        teacher, image = self.train_teacher, self.preprocess.image_size
        for name, family in self.families.items():
            if not FAMILY_NAME.match(name) or name in choices.KERAS_MODELS or \
                    name.endswith(tuple(f"_{control}" for control in layout.FAMILY_CONTROLS)):
                raise ValueError(f"family name {name!r} (under 'families') must be lower-case letters, digits and _, "
                                 f"starting with a letter, at most 40 characters, not ending in the name of a control "
                                 f"({', '.join('_' + c for c in layout.FAMILY_CONTROLS)}) and not one of the pipeline's "
                                 f"models {sorted(choices.KERAS_MODELS)}")
            if teacher.backbone != "efficientnet_lite0" or teacher.weights == "none":
                raise ValueError(f"parameter 'families.{name}' inherits the teacher's EfficientNet-Lite0 weights; this "
                                 f"teacher is 'train_teacher.backbone: {teacher.backbone}' with 'train_teacher.weights: "
                                 f"{teacher.weights}'. Set the backbone to efficientnet_lite0 with weights imagenet, or "
                                 "families to {}")
            size = family.input_size if family.input_size is not None else self.train_student.input_size
            if size is not None and (size > image or image % size):
                raise ValueError(f"parameter 'families.{name}.input_size' ({size}) must divide 'preprocess.image_size' "
                                 f"({image}) exactly, e.g. {image // 2} or {image // 4}, or be null "
                                 "(train_student.input_size)")
        if self.families and self.train_student.teacher_in_loop:
            raise ValueError("parameter 'families' distils from the teacher's stored logits; with "
                             "'train_student.teacher_in_loop: true' set families to {} or teacher_in_loop to false")
        return self

    @model_validator(mode="after")
    def _shipped_family(self) -> Params:
        shipped = self.benchmark.shipped
        if shipped.endswith("_int8") and shipped.removesuffix("_int8") in self.families:
            return self
        if shipped != choices.AUTO and shipped not in choices.shippable():
            raise ValueError(f"parameter 'benchmark.shipped' must be '{choices.AUTO}' or name one of the TFLite "
                             f"variants {choices.shippable() + [f'{name}_int8' for name in self.families]}, "
                             f"got {shipped!r}")
        return self

    @model_validator(mode="after")
    def _student_input_divides_the_image(self) -> Params:
        size, image = self.train_student.input_size, self.preprocess.image_size
        if size is not None and (size > image or image % size):
            raise ValueError(f"parameter 'train_student.input_size' ({size}) must divide 'preprocess.image_size' "
                             f"({image}) exactly, e.g. {image // 2} or {image // 4}, or be null (the student works on "
                             "the full image)")
        return self

    @model_validator(mode="after")
    def _unlabeled_need_stored_logits(self) -> Params:
        if self.preprocess.unlabeled_dir is not None and self.train_student.teacher_in_loop:
            raise ValueError("parameter 'preprocess.unlabeled_dir' gives the distilled student images that only the "
                             "teacher's stored logits label; with 'train_student.teacher_in_loop: true' they would go "
                             "unused: set one of them to null / false")
        return self

    def run_params(self, section: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """A section's values (less `exclude`) and the global seed: the MLflow parameters of the stage that reads it."""
        return {**getattr(self, section).model_dump(exclude=set(exclude)), "seed": self.seed}


SECTIONS = tuple(name for name in Params.model_fields if name != "seed")


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """params.yaml, validated whole; a ParamsError names the file and the first bad parameter."""
    try:
        return _load(Path(path))
    except ParamsError as error:
        raise ParamsError(f"{error}{removed_outputs_hint()}") from None


def removed_outputs_hint() -> str:
    """For an error that stops a stage DVC started: DVC deletes a stage's outputs before it runs the command, so
    by the time a stage can refuse, the last good outputs are gone from the workspace. `dvc checkout` puts back
    the cached ones only; the metrics and plots declared `cache: false` come back from git, if they were committed."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    uncached = uncached_outputs(stage)
    from_git = (f" and `git checkout -- {' '.join(uncached)}` for the metrics and plots DVC does not cache (as last "
                "committed; uncommitted ones are gone)") if uncached else ""
    return (f". DVC removed stage {stage}'s outputs before starting it: once this is fixed, `dvc repro` makes them "
            f"again; to put back the last ones as they were, `dvc checkout {stage}` for its cached outputs{from_git}")


def uncached_outputs(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """The `cache: false` outputs, metrics and plots of a stage of dvc.yaml (`quantize@student`: a matrix stage's
    ${item.model} filled in); [] when dvc.yaml or the stage cannot be read."""
    name, _, item = stage.partition("@")
    try:
        definition = yaml.safe_load(dvc_yaml.read_text())["stages"][name]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []
    found = []
    for kind in ("outs", "metrics", "plots"):
        for entry in definition.get(kind) or []:
            if isinstance(entry, dict):
                for path, options in entry.items():
                    if isinstance(options, dict) and options.get("cache") is False:
                        found.append(re.sub(r"\$\{item(\.\w+)?\}", item, path))
    return found


def _load(path: Path) -> Params:
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    try:
        with path.open() as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections")
    return from_dict(raw, source=str(path))


def from_dict(raw: dict[str, Any], source: str) -> Params:
    """Validate parameters given as a dict (a loaded params.yaml, or one with a script's overrides applied);
    `source` starts the error message."""
    raw = {name: {} if section is None else section for name, section in raw.items()}  # `sweep:` with nothing under it
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{source}: {_explain(error.errors(), raw)}") from None


def _explain(errors: list[dict], raw: dict) -> str:
    """The first problem, in the order a reader checks a file: unknown sections, then each section in file order
    (unknown keys, missing keys, each key's value, the relations between keys), then the seed."""
    unknown = sorted(e["loc"][0] for e in errors if len(e["loc"]) == 1 and e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown section(s) {unknown}; known: {sorted(SECTIONS)}"
    across = [e for e in errors if not e["loc"]]
    if across:  # a relation between sections: checked once every section is valid on its own
        return str(across[0]["ctx"]["error"])
    families = [e for e in errors if e["loc"][0] == "families"]
    if families:
        return _family_error(families, raw.get("families"))
    for name in (*SECTIONS, "seed"):
        mine = [e for e in errors if e["loc"][0] == name]
        if not mine:
            continue
        if name == "seed":
            if any(e["type"] == "missing" for e in mine):
                return "missing parameter 'seed' (the top-level seed of every split, view and training, e.g. seed: 42)"
            return _value_error("seed", raw.get("seed"), mine, Params.model_fields["seed"])
        whole = [e for e in mine if len(e["loc"]) == 1]
        if whole and whole[0]["type"] == "missing":
            return f"missing section '{name}'"
        if whole and whole[0]["type"] != "value_error":
            return f"section '{name}' must be a mapping of parameters, got {raw[name]!r}"
        fields = Params.model_fields[name].annotation.model_fields
        extra = sorted(e["loc"][1] for e in mine if e["type"] == "extra_forbidden")
        if extra:
            return f"unknown parameter(s) {[f'{name}.{key}' for key in extra]}; known: {sorted(fields)}"
        for key, field in fields.items():
            if any(e["loc"][1:2] == (key,) and e["type"] == "missing" for e in mine):
                return f"missing parameter '{name}.{key}'"
        for key, field in fields.items():
            about_key = [e for e in mine if e["loc"][1:2] == (key,)]
            if about_key:
                return _value_error(f"{name}.{key}", raw[name][key], about_key, field)
        return str(whole[0]["ctx"]["error"])  # a relation between keys: the validator's own sentence
    return "; ".join(e["msg"] for e in errors)  # not reached: every error has a section or the seed


def _family_error(errors: list[dict], raw: Any) -> str:
    """The first problem under `families`: not a mapping, an unknown or missing key, or a key's value."""
    shape = ("must be a mapping of family names to {blocks, width[, input_size, controls]}, e.g. "
             "{cut8: {blocks: 8, width: 1}, half: {blocks: 16, width: 0.5}}; {} for none")
    if not isinstance(raw, dict):
        return f"parameter 'families' {shape}, got {raw!r}"
    for error in errors:
        loc = error["loc"]
        if len(loc) == 2 and error["type"] == "value_error":  # Family's own check: a control named twice
            return f"parameter 'families.{loc[1]}.controls': {error['ctx']['error']}"
        if len(loc) == 2:
            return f"parameter 'families.{loc[1]}' {shape}, got {raw[loc[1]]!r}"
        name, key = loc[1], loc[2]
        if error["type"] == "extra_forbidden":
            return f"unknown parameter 'families.{name}.{key}'; known: {sorted(Family.model_fields)}"
        if error["type"] == "missing":
            return f"missing parameter 'families.{name}.{key}'"
        return _value_error(f"families.{name}.{key}", raw[name][key], [error], Family.model_fields[key])
    return "; ".join(e["msg"] for e in errors)


BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
          "less_than": ("<", "lt")}


def _value_error(name: str, value: Any, errors: list[dict], field) -> str:
    types = [e["type"] for e in errors]

    def fail(why: str) -> str:
        return f"parameter '{name}' {why}, got {value!r}"

    if field.description:
        return fail(f"must be {field.description}")
    if value is None:
        return fail("must be set")
    if "finite_number" in types:
        return fail("must be a finite number")
    if "literal_error" in types:
        return fail(f"must be one of {list(_literals(field.annotation))}")
    for error in errors:
        if error["type"] in BOUNDS:
            symbol, key = BOUNDS[error["type"]]
            return fail(f"must be {symbol} {error['ctx'][key]}")
    return fail(f"must be of type {'/'.join(_type_names(field.annotation))}")


def _literals(annotation) -> tuple:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return tuple(v for arg in get_args(annotation) for v in _literals(arg))


def _type_names(annotation) -> list[str]:
    """int, float, str, bool, list for the annotations above (Strict*, Annotated, unions, Optional)."""
    if annotation is type(None):
        return []
    if get_origin(annotation) is Annotated:
        return _type_names(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [name for arg in get_args(annotation) for name in _type_names(arg)]
    if get_origin(annotation) is not None:
        return [get_origin(annotation).__name__]
    return [annotation.__name__]


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice: YAML would silently keep the last one."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicated = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicated:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key(s) {duplicated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train_student": {"alpha": 0.5}} -> {"train_student.alpha": 0.5}: DVC's and MLflow's parameter names."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

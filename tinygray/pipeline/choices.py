"""Every closed list of names a parameter may take, and the names of the model variants a run produces: the
parameter schema (params.py) validates against them and the domain modules import them from here, so each list
is written once. A plain module (checking params.yaml imports no TensorFlow).

The variants, in table order: which Keras models a run trains, their role on the frontier, which of them the
quantize stage converts, and into which TFLite modes. Read by the benchmark, the quantize stage and the parameter
checks; dvc.yaml's quantize matrix lists the same models (tests/test_dvc_yaml.py keeps the two equal).

Unlike the rest of tinygray/pipeline/, this module shapes outputs (variant names, which models are quantized):
scripts/stage_deps.py lists it among the DVC dependencies of the stages that import it."""
from __future__ import annotations

# train_student.backend: the Keras backend a student stage trains on (tinygray/train/backend.py)
BACKENDS = ("tensorflow", "jax")
# train_teacher.distribute -> the tf.distribute strategy, by its public name (tinygray/train/distribute.py)
STRATEGIES = {"none": "default", "mirrored": "MirroredStrategy", "multi_worker": "MultiWorkerMirroredStrategy"}
# preprocess.duplicates: what the leakage guard does with near-duplicates (tinygray/data/duplicates.py)
DUPLICATE_POLICIES = ("report", "drop", "fail")

TEACHER = "teacher"
MODES = ("float32", "dynamic_range", "float16", "int8")
# model name: (frontier kind, its TFLite files: every MODE where quantize@<model> converts it; qat's own int8
# file, written by the qat stage; none for the scratch control)
KERAS_MODELS = {"teacher": ("teacher", MODES), "student": ("distilled", MODES), "scratch": ("scratch", ()),
                "pruned": ("pruned", MODES), "pruned_filters": ("pruned", MODES), "qat": ("qat", ("int8",)),
                "pruned_scratch": ("scratch", MODES)}
# benchmark.shipped: the smallest file whose validation accuracy is within benchmark.max_accuracy_drop of the
# teacher's (benchmark.choose_shipped)
AUTO = "auto"
# the scratch control of each distilled model: the same network and training, on labels alone
CONTROLS = {"student": "scratch", "pruned": "pruned_scratch"}


def quantized_models() -> list[str]:
    """The models quantize@<model> converts (dvc.yaml's quantize matrix)."""
    return [name for name, (_, modes) in KERAS_MODELS.items() if modes == MODES]


def shippable() -> list[str]:
    """The TFLite files benchmark.shipped may name: any but a control's."""
    return [f"{name}_{mode}" for name, (_, modes) in KERAS_MODELS.items() for mode in modes
            if name not in CONTROLS.values()]


def control_of(variant: str) -> str | None:
    """The control's variant of the same format as a distilled one (pruned_int8 -> pruned_scratch_int8,
    student -> scratch), or None where there is none (the teacher, filter pruning, QAT)."""
    for model, control in CONTROLS.items():
        if variant == model:
            return control
        mode = variant.removeprefix(model + "_")
        if variant == f"{model}_{mode}" and mode in KERAS_MODELS[control][1]:
            return f"{control}_{mode}"
    return None

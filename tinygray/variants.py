"""The variants a pipeline run produces, in table order: which Keras models it trains, their role on the
frontier, which of them the quantize stage converts, and into which TFLite modes. Read by the benchmark,
the quantize stage and the parameter checks (a plain module: checking params.yaml imports no TensorFlow);
dvc.yaml's quantize matrix lists the same models (tests/test_dvc_yaml.py keeps the two equal)."""
from __future__ import annotations

TEACHER = "teacher"
MODES = ("float32", "dynamic_range", "float16", "int8")
# model name: (frontier kind, its TFLite files: every MODE where quantize@<model> converts it; qat's own int8
# file, written by the qat stage; none for the scratch control)
KERAS_MODELS = {"teacher": ("teacher", MODES), "student": ("distilled", MODES), "scratch": ("scratch", ()),
                "pruned": ("pruned", MODES), "pruned_filters": ("pruned", MODES), "qat": ("qat", ("int8",))}


def quantized_models() -> list[str]:
    """The models quantize@<model> converts (dvc.yaml's quantize matrix)."""
    return [name for name, (_, modes) in KERAS_MODELS.items() if modes == MODES]


def shippable() -> list[str]:
    """The TFLite files benchmark.shipped may name."""
    return [f"{name}_{mode}" for name, (_, modes) in KERAS_MODELS.items() for mode in modes]

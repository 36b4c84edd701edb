"""The variants a pipeline run produces, in table order: which Keras models it trains, their role on the
frontier, which of them the quantize stage converts, and into which TFLite modes. Read by the benchmark,
the quantize stage and the parameter checks (a plain module: checking params.yaml imports no TensorFlow);
dvc.yaml's quantize matrix lists the same models (tests/test_dvc_yaml.py keeps the two equal)."""
from __future__ import annotations

TEACHER = "teacher"
# model name: (frontier kind, converted to TFLite by quantize@<model>)
KERAS_MODELS = {"teacher": ("teacher", True), "student": ("distilled", True), "scratch": ("scratch", False),
                "pruned": ("pruned", True), "pruned_filters": ("pruned", True)}
MODES = ("float32", "dynamic_range", "float16", "int8")


def quantized_models() -> list[str]:
    return [name for name, (_, quantized) in KERAS_MODELS.items() if quantized]


def shippable() -> list[str]:
    """The TFLite files benchmark.shipped may name: every conversion of every quantized model."""
    return [f"{name}_{mode}" for name in quantized_models() for mode in MODES]

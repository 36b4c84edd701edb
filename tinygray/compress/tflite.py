"""TFLite conversion and inference: the formats that actually ship to a phone."""
from __future__ import annotations

import contextlib
import difflib
import io
import sys
import time
from pathlib import Path

import keras
import numpy as np

from tinygray.evaluate import stats
from tinygray.litert import TFLiteModel
from tinygray.pipeline.choices import MODES

# EXPERIMENTAL_SPARSITY on the quantized modes gave files LiteRT's default XNNPack delegate refuses
# ("failed to delegate CONV_2D ... failed to prepare") and, at 50% sparsity, larger ones
# (int8: 20,208 vs 16,384 bytes), so the sparse encoding is only used for the float kernels.
SPARSE_MODES = ("float32", "float16")


def representative_dataset(images: np.ndarray, num_samples: int, seed: int):
    """Calibration batches for int8: real training images, through the same preprocessing as inference
    (the model takes raw pixels), a seeded sample so the quantization ranges are reproducible."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=min(num_samples, len(images)), replace=False)

    def batches():
        for i in np.sort(chosen):
            yield [np.asarray(images[i : i + 1], dtype=np.float32)]

    return batches


def convert(model: keras.Model, mode: str, *, representative=None, sparse: bool = False) -> bytes:
    """Keras model -> .tflite bytes. `sparse` adds EXPERIMENTAL_SPARSITY for the SPARSE_MODES: pruned
    float kernels are stored compressed, so zeros from magnitude pruning shrink the file, not just its gzip."""
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; choose one of {MODES}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = []
    if mode != "float32":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset")
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if sparse and mode in SPARSE_MODES:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    # The Keras export inside the converter prints every captured tensor ("Captures: ... TensorSpec"), half
    # of a `make repro` log; kept only if the conversion fails.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            return converter.convert()
    except Exception:
        sys.stdout.write(printed.getvalue())
        raise


def int8_gate(int8_correct: np.ndarray, float_correct: np.ndarray, max_drop: float) -> dict:
    """Failed only when int8 loses more than `max_drop` of validation accuracy and the paired test on the
    same images says the loss is not chance."""
    delta = round(float(int8_correct.mean() - float_correct.mean()), 4)
    test = stats.mcnemar(int8_correct, float_correct)
    return {"accuracy_delta": delta, **test, "passed": not (-delta > max_drop and stats.significant(test["p_value"]))}


# Ops whose output is a tensor of the network (not a (de)quantization at its borders), compared layer by layer.
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "MUL",
               "ADD", "RESHAPE", "SOFTMAX")


def op_outputs(path: Path | str, images: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """(op, tensor name, float values) of every COMPUTE_OPS op's output for these images, in execution order,
    int8 tensors dequantized. Run without delegates, every intermediate tensor kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    model = TFLiteModel.__new__(TFLiteModel)  # reuse its input quantization with this interpreter
    model.interpreter, model.input = interpreter, interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(model.input["index"], [len(images), *model.input["shape"][1:]])
    interpreter.allocate_tensors()
    interpreter.set_tensor(model.input["index"], model._quantize_input(images))
    interpreter.invoke()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    outputs = []
    for op in interpreter._get_ops_details():
        if op["op_name"] not in COMPUTE_OPS:
            continue
        index = op["outputs"][0]
        raw, details = interpreter.get_tensor(index), tensors[index]
        scale, zero_point = details["quantization"]
        values = (raw.astype(np.float32) - zero_point) * scale if np.issubdtype(raw.dtype, np.integer) and scale \
            else raw.astype(np.float32)
        outputs.append((op["op_name"], details["name"], values))
    return outputs


def layer_errors(float_path: Path | str, int8_path: Path | str, images: np.ndarray) -> list[dict]:
    """How far each layer's int8 output is from the float32 file's, on the same images, layer by layer in
    execution order: the signal-to-noise ratio in dB (channel_noise_ratio; higher is closer), and the noise
    this layer adds (noise_added: its noise-to-signal ratio
    minus the layer before's): errors add up through the network, so the layer that hurts most is the one
    that adds most, not the one with the lowest SNR. The two files come from one network, so their compute
    ops pair up in order."""
    reference, quantized = op_outputs(float_path, images), op_outputs(int8_path, images)
    # the same network, but a conversion may fold an op the other keeps (the input scaling of a QAT file):
    # pair the ops that both files have, in order
    matcher = difflib.SequenceMatcher(None, [op for op, _, _ in reference], [op for op, _, _ in quantized], autojunk=False)
    pairs = [(reference[block.a + k], quantized[block.b + k]) for block in matcher.get_matching_blocks()
             for k in range(block.size)]
    if len(pairs) < max(len(reference), len(quantized)) / 2:
        raise ValueError(f"{float_path} and {int8_path} do not have the same layers: "
                         f"{[op for op, _, _ in reference]} vs {[op for op, _, _ in quantized]}")
    errors, previous = [], 0.0
    for position, ((op, name, expected), (_, _, actual)) in enumerate(pairs):
        ratio = channel_noise_ratio(expected, actual)
        errors.append({"name": f"{position}:{op}", "layer": layer_name(name),
                       "snr_db": round(float(min(99.0, -10 * np.log10(ratio))) if ratio > 0 else 99.0, 2),
                       "noise_added": round(ratio - previous, 6)})
        previous = ratio
    return errors


def channel_noise_ratio(expected: np.ndarray, actual: np.ndarray) -> float:
    """Noise energy over signal energy, per output channel (the last axis), averaged over the channels that
    carry a signal: one loud channel cannot hide the others being rounded to nothing, which is exactly what a
    per-tensor int8 range does to them."""
    axes = tuple(range(expected.ndim - 1))
    signal = np.sum(expected.astype(np.float64) ** 2, axis=axes)
    noise = np.sum((expected.astype(np.float64) - actual) ** 2, axis=axes)
    live = signal > 1e-12
    return float(np.mean(noise[live] / signal[live])) if live.any() else 0.0


def worst_layer(errors: list[dict]) -> dict:
    """The layer that adds the most quantization noise (noise_added)."""
    return max(errors, key=lambda error: error["noise_added"])


def layer_name(tensor_name: str) -> str:
    """The Keras layer a TFLite tensor came from: the converter names tensors <model>/<layer>/<op>;..."""
    first = tensor_name.split(";")[0].split("/")
    return first[1] if len(first) > 1 else first[0]

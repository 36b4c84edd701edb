"""Quantization-aware training (QAT) for Keras 3, ending in a builtin-int8 .tflite.

No kept library does this: tensorflow-model-optimization needs Keras 2 and has no Keras 3 plan, and Keras 3's
own `model.quantize` does not convert to TFLite. TensorFlow's fake-quantization ops do, and the TFLite
converter turns them into int8 kernels with exactly the ranges they were trained with. Here:

1. fold_batchnorm: each BatchNormalization is folded into the convolution before it (W * gamma / sqrt(var + eps),
   bias beta - mean * gamma / sqrt(var + eps)), as the converter would fold it, so training sees the weights
   that will be quantized;
2. quantization_aware: convolution kernels are fake-quantized per output channel and the dense kernel per
   tensor, symmetric over [-max|W|, max|W|] with the narrow int8 range, as TFLite's int8 kernels are; every
   activation TFLite stores (after the input scaling, each ReLU, the pooling, the logits) gets an
   ActivationRange, fake-quantized per tensor over a range that follows the batches' extremes as a moving
   average while training and is fixed afterwards;
3. the model is fine-tuned (the qat stage: the distillation loss on the stored views) and converted with the
   TFLite converter, builtin int8 ops only, int8 input and output (quantization.convert, mode "int8").

Gradients pass the rounding straight through (the fake-quant ops' own gradient).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _fake_quant(x, low, high, *, per_channel: bool = False, narrow_range: bool = False):
    import tensorflow as tf

    if per_channel:
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(x, low, high, num_bits=8, narrow_range=narrow_range)
    return tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=narrow_range)


@keras.saving.register_keras_serializable(package="tinygray")
class ActivationRange(keras.layers.Layer):
    """Fake-quantizes a tensor to 8 bits over [minimum, maximum]. While training, the range follows the
    batch extremes as an exponential moving average (`momentum`); `fixed` ranges (the 0..255 pixels) never
    move. At inference and in the converted file the range is what training left."""

    def __init__(self, momentum: float = 0.99, fixed: tuple[float, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.fixed = None if fixed is None else (float(fixed[0]), float(fixed[1]))

    def build(self, input_shape):
        low, high = self.fixed or (0.0, 0.0)
        self.minimum = self.add_weight(shape=(), initializer=keras.initializers.Constant(low), trainable=False,
                                       name="minimum")
        self.maximum = self.add_weight(shape=(), initializer=keras.initializers.Constant(high), trainable=False,
                                       name="maximum")
        # 0 until the first training batch (or calibrate) sets the range; then a moving average
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, x, training=False):
        if training and self.fixed is None:
            batch_min, batch_max = ops.minimum(ops.min(x), 0.0), ops.maximum(ops.max(x), 0.0)
            keep = self.momentum * self.seen  # 0 at the first batch: take its range as it is
            self.minimum.assign(keep * self.minimum + (1.0 - keep) * batch_min)
            self.maximum.assign(keep * self.maximum + (1.0 - keep) * batch_max)
            self.seen.assign(1.0)
        return _fake_quant(x, self.minimum, ops.maximum(self.maximum, self.minimum + 1e-6))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "fixed": self.fixed}


@keras.saving.register_keras_serializable(package="tinygray")
class QuantizedConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is fake-quantized per output channel, symmetric, narrow range (TFLite int8)."""

    def convolution_op(self, inputs, kernel):
        bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel), axis=(0, 1, 2)), 1e-8))
        return super().convolution_op(inputs, _fake_quant(kernel, -bound, bound, per_channel=True, narrow_range=True))


@keras.saving.register_keras_serializable(package="tinygray")
class QuantizedDense(keras.layers.Dense):
    """Dense whose kernel is fake-quantized per tensor, symmetric, narrow range (TFLite's fully connected)."""

    def call(self, inputs, training=None):
        bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(self.kernel)), 1e-8))
        outputs = ops.matmul(inputs, _fake_quant(self.kernel, -bound, bound, narrow_range=True))
        return outputs + self.bias if self.use_bias else outputs


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of a plain chain of layers (student.build) with every BatchNormalization folded into the
    convolution just before it; the outputs are the same up to float rounding. Other layers are copied."""
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x, layers = inputs, model.layers[1:]
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, keras.layers.Conv2D) and isinstance(following, keras.layers.BatchNormalization):
            kernel, *bias = layer.get_weights()
            gamma = np.asarray(following.gamma) if following.scale else np.ones(kernel.shape[-1], np.float32)
            beta = np.asarray(following.beta) if following.center else np.zeros(kernel.shape[-1], np.float32)
            scale = gamma / np.sqrt(np.asarray(following.moving_variance) + following.epsilon)
            shift = beta - np.asarray(following.moving_mean) * scale + (bias[0] * scale if bias else 0.0)
            config = {**layer.get_config(), "use_bias": True}
            folded = keras.layers.Conv2D.from_config(config)
            x = folded(x)
            folded.set_weights([kernel * scale, shift.astype(np.float32)])
            index += 2
        else:
            copy = layer.__class__.from_config(layer.get_config())
            x = copy(x)
            copy.set_weights(layer.get_weights())
            index += 1
    return keras.Model(inputs, x, name=model.name)


def quantization_aware(folded: keras.Model) -> keras.Model:
    """The folded model with fake quantization (module docstring): QuantizedConv2D and QuantizedDense for the
    kernels, an ActivationRange after the input, its scaling, each ReLU, the global pooling and the logits.
    The model takes raw 0..255 pixels, so the input's range is fixed to exactly that."""
    inputs = keras.Input(folded.input_shape[1:], name=folded.layers[0].name)
    x = ActivationRange(fixed=(0.0, 255.0), name="input_range")(inputs)
    for layer in folded.layers[1:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            raise ValueError(f"quantization_aware: fold {layer.name!r} into its convolution first (fold_batchnorm)")
        kind = {keras.layers.Conv2D: QuantizedConv2D, keras.layers.Dense: QuantizedDense}.get(type(layer), type(layer))
        copy = kind.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.ReLU, keras.layers.GlobalAveragePooling2D,
                              keras.layers.Dense)) or (isinstance(layer, keras.layers.Conv2D)
                                                       and layer.get_config().get("activation") not in (None, "linear")):
            x = ActivationRange(name=f"{layer.name}_range")(x)
    return keras.Model(inputs, x, name=f"{folded.name}_qat")


# Training images that set the activation ranges before fine-tuning: enough batches for the moving
# averages to settle, a fraction of an epoch.
CALIBRATION_IMAGES = 1024


def calibrate(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> None:
    """Set every ActivationRange from the training images before fine-tuning: the first batch sets the range,
    the rest move it, as training would."""
    for start in range(0, len(images), batch_size):
        model(np.asarray(images[start:start + batch_size], dtype=np.float32), training=True)


def ranges(model: keras.Model) -> dict[str, tuple[float, float]]:
    """Every ActivationRange's (minimum, maximum), by layer name."""
    return {layer.name: (round(float(layer.minimum), 6), round(float(layer.maximum), 6))
            for layer in model.layers if isinstance(layer, ActivationRange)}


def strip(model: keras.Model) -> keras.Model:
    """The quantization-aware model's network in plain float: QuantizedConv2D and QuantizedDense back to Conv2D
    and Dense with the trained weights, the ActivationRanges left out; the reference its int8 file is
    compared with, layer by layer (quantization.layer_errors)."""
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x = inputs
    for layer in model.layers[1:]:
        if isinstance(layer, ActivationRange):
            continue
        kind = keras.layers.Conv2D if isinstance(layer, QuantizedConv2D) else \
            keras.layers.Dense if isinstance(layer, QuantizedDense) else type(layer)
        copy = kind.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=model.name.removesuffix("_qat"))

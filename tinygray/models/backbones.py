"""Single-channel feature-extractor backbones for the teacher.

Why: the data is grayscale but pretrained weights are RGB. Each backbone is
built as its 3-channel model with weights, then as a 1-channel twin whose stem
kernel is the RGB kernel summed over input channels (:func:`grayscale_stem_kernel`),
all other weights copied. On a gray image the twin equals the RGB model on the
image replicated to three channels, so the pretrained behaviour is kept at a
third of the stem cost. Every backbone takes raw 0..255 pixels of shape
(H, W, 1) and does its own preprocessing inside the model, and outputs its last
4-D feature map. BatchNorm layers are plain ``keras.layers.BatchNormalization``,
so callers can freeze them with ``trainable = False``.

VGG16's caffe preprocessing subtracts a different mean per channel. Because the
stem zero-pads *after* that subtraction, folding the means into the bias is
wrong at the image border; instead the twin's stem sees two channels, the gray
image minus the average mean and a constant-one channel (zero in the padding),
whose kernel carries the per-channel mean differences. That is exact everywhere.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import keras
import numpy as np

from tinygray.models.efficientnet_lite import (
    FEATURES_LAYER,
    efficientnet_lite0,
    imagenet_checkpoint_path,
    load_imagenet_weights,
)
from tinygray.models.torch_checkpoint import load_torch_checkpoint

BACKBONES = ("efficientnet_lite0", "mobilenet_v2", "vgg16")
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
VGG16_BGR_MEAN = np.array([103.939, 116.779, 123.68])  # keras.applications caffe mode
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


class BackboneError(ValueError):
    """A backbone that cannot be built as configured (bad name/shape/weights, or weights unreachable)."""


def grayscale_stem_kernel(kernel: np.ndarray) -> np.ndarray:
    """Sum an HWIO kernel over its input channels: exact for inputs equal on all channels."""
    return np.sum(kernel, axis=2, keepdims=True)


def build_backbone(name: str, weights: str, input_shape: tuple) -> keras.Model:
    """Feature extractor on raw (H, W, 1) pixels.

    ``weights``: ``"imagenet"``, ``"none"`` (random init), or the path of a
    weights file for the 3-channel model: a ``.weights.h5`` of
    ``efficientnet_lite0((H, W, 3), include_top=False)``, or for the
    keras.applications backbones any file their ``weights=`` argument accepts
    (e.g. the downloaded ``*_notop.h5``).
    """
    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    height, width, channels = input_shape
    if channels != 1:
        raise BackboneError(f"backbones take single-channel input, got input_shape={tuple(input_shape)}")
    if weights not in ("imagenet", "none") and not os.path.isfile(weights):
        raise BackboneError(f"weights must be 'imagenet', 'none' or an existing file, got {weights!r}")
    rgb_shape, gray_shape = (height, width, 3), (height, width, 1)
    rgb_builder = {"efficientnet_lite0": _lite_rgb, "mobilenet_v2": _mobilenet_v2_rgb, "vgg16": _vgg16_rgb}[name]
    try:
        rgb = rgb_builder(weights, rgb_shape)
    except BackboneError:
        raise
    except Exception as error:  # a local file: h5py, zipfile and Keras each fail their own way on a wrong one
        if weights in ("imagenet", "none"):
            raise
        raise BackboneError(f"parameter 'train_teacher.weights': {weights} cannot be loaded as {name} weights "
                            f"({type(error).__name__}: {error}); it must be a Keras weights file saved from "
                            f"that backbone (.weights.h5 or .h5)") from None
    if name == "efficientnet_lite0":
        gray, stem = efficientnet_lite0(gray_shape, include_top=False), None
    elif name == "mobilenet_v2":
        gray, stem = _mobilenet_v2_gray(gray_shape), None
    else:
        gray, stem = _vgg16_gray(gray_shape), _vgg16_stem_kernel
    _copy_to_grayscale(rgb, gray, stem or grayscale_stem_kernel)
    return gray


def _lite_rgb(weights, shape):
    if weights == "imagenet":
        full = efficientnet_lite0(shape, include_top=True)
        load_imagenet_weights(full, load_torch_checkpoint(imagenet_checkpoint_path()))
        return keras.Model(full.input, full.get_layer(FEATURES_LAYER).output)
    model = efficientnet_lite0(shape, include_top=False)
    if weights != "none":
        model.load_weights(weights)
    return model


def _mobilenet_v2_rgb(weights, shape):
    size = shape[0] if shape[0] == shape[1] and shape[0] in _MOBILENET_V2_SIZES else 224
    file = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"
    keras_weights = _keras_weights(weights, "mobilenet_v2", file)
    return keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=keras_weights)


def _mobilenet_v2_gray(shape):
    inputs = keras.Input(shape, name="gray_pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    return _single_input(inputs, keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=None))


def _vgg16_rgb(weights, shape):
    keras_weights = _keras_weights(weights, "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    return keras.applications.VGG16(input_shape=shape, include_top=False, weights=keras_weights)


def _vgg16_gray(shape):
    inputs = keras.Input(shape, name="gray_pixels")
    centered = keras.layers.Rescaling(1.0, offset=-VGG16_BGR_MEAN.mean(), name="preprocess")(inputs)
    inside = keras.layers.Rescaling(0.0, offset=1.0, name="inside_mask")(inputs)
    x = keras.layers.Concatenate(name="gray_and_mask")([centered, inside])
    return _single_input(inputs, keras.applications.VGG16(input_tensor=x, include_top=False, weights=None))


def _single_input(inputs, model):
    # keras.applications wraps an input_tensor's source in a list; rewrap so the model takes one tensor.
    return keras.Model(inputs, model.output, name=model.name)


def _vgg16_stem_kernel(kernel):
    """Summed kernel plus a mask-channel kernel adding sum_c (mean - mean_c) * W_c inside the image."""
    correction = np.tensordot(kernel, VGG16_BGR_MEAN.mean() - VGG16_BGR_MEAN, axes=([2], [0]))
    return np.concatenate([grayscale_stem_kernel(kernel), correction[:, :, None, :]], axis=2)


def _copy_to_grayscale(rgb: keras.Model, gray: keras.Model, stem_kernel) -> None:
    rgb_layers = {layer.name: layer for layer in rgb.layers if layer.weights}
    gray_layers = [layer for layer in gray.layers if layer.weights]
    if sorted(rgb_layers) != sorted(layer.name for layer in gray_layers):
        raise RuntimeError(f"{gray.name}: RGB and grayscale models have different weighted layers")
    stems = []
    for layer in gray_layers:
        values = rgb_layers[layer.name].get_weights()
        if values[0].shape != tuple(layer.weights[0].shape):
            values[0] = stem_kernel(values[0])
            stems.append(layer.name)
        layer.set_weights(values)
    if len(stems) != 1:
        raise RuntimeError(f"{gray.name}: expected exactly one stem layer to adapt, found {stems}")


def _keras_cache_file(file: str) -> Path:
    """Where keras.utils.get_file caches application weights (mirrors keras's KERAS_HOME rule)."""
    if "KERAS_HOME" in os.environ:
        home = Path(os.environ["KERAS_HOME"])
    else:
        home = Path.home() / ".keras" if os.access(Path.home(), os.W_OK) else Path("/tmp/.keras")
    return home / "models" / file


def _keras_weights(weights: str, name: str, file: str):
    """Translate our weights option for keras.applications, failing fast when a download can't work."""
    if weights == "none":
        return None
    if weights != "imagenet" or _keras_cache_file(file).is_file():
        return weights
    url = f"{KERAS_WEIGHTS_URL}{name}/{file}"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5).close()
    except OSError as exc:
        raise BackboneError(
            f"{name} weights 'imagenet' must be downloaded from {url}, which is unreachable here ({exc}). "
            "Instead: use backbone 'efficientnet_lite0' (its ImageNet weights ship offline), "
            "or set weights: none, or download that file elsewhere and pass its local path as weights "
            f"(or place it at {_keras_cache_file(file)})."
        ) from exc
    return weights

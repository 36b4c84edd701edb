import socket
import time

import keras
import numpy as np
import pytest

from tinygray.models.backbones import BackboneError, _keras_cache_file, build_backbone, grayscale_stem_kernel
from tinygray.models.efficientnet_lite import (
    FEATURES_LAYER,
    efficientnet_lite0,
    imagenet_checkpoint_path,
    load_imagenet_weights,
)
from tinygray.models.torch_checkpoint import load_torch_checkpoint

RNG = np.random.default_rng(0)
# keras's own save_weights trips a numpy 2 DeprecationWarning hundreds of times; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _gray_images(size, n=2):
    return RNG.uniform(0, 255, (n, size, size, 1)).astype(np.float32)


def _assert_close(gray_out, rgb_out):
    scale = np.abs(rgb_out).max()
    assert scale > 0.1
    assert np.abs(gray_out - rgb_out).max() < 1e-5 * scale


def _randomized_weights_file(model, path):
    """Non-zero biases/BN stats so that mean and bias handling are actually exercised."""
    values = []
    for variable, value in zip(model.weights, model.get_weights()):
        if value.ndim == 1:
            noise = RNG.normal(0, 0.1, value.shape).astype(value.dtype)
            value = np.abs(value + noise) + 0.5 if "variance" in variable.path else value + noise
        values.append(value)
    model.set_weights(values)
    model.save_weights(path)
    return str(path)


def test_grayscale_stem_kernel_sums_input_channels():
    kernel = RNG.normal(size=(3, 3, 3, 8))
    summed = grayscale_stem_kernel(kernel)
    assert summed.shape == (3, 3, 1, 8)
    np.testing.assert_allclose(summed[:, :, 0], kernel[:, :, 0] + kernel[:, :, 1] + kernel[:, :, 2])


def test_efficientnet_lite0_imagenet_gray_equals_rgb_on_replicated_image():
    gray = build_backbone("efficientnet_lite0", "imagenet", (96, 96, 1))
    full = efficientnet_lite0((96, 96, 3))
    load_imagenet_weights(full, load_torch_checkpoint(imagenet_checkpoint_path()))
    rgb = keras.Model(full.input, full.get_layer(FEATURES_LAYER).output)
    x = _gray_images(96)
    out = gray(x, training=False).numpy()
    assert out.shape == (2, 3, 3, 1280)
    _assert_close(out, rgb(np.repeat(x, 3, axis=-1), training=False).numpy())


def test_efficientnet_lite0_weights_path(tmp_path):
    rgb = efficientnet_lite0((64, 64, 3), include_top=False)
    path = _randomized_weights_file(rgb, tmp_path / "lite.weights.h5")
    gray = build_backbone("efficientnet_lite0", path, (64, 64, 1))
    x = _gray_images(64)
    _assert_close(gray(x, training=False).numpy(), rgb(np.repeat(x, 3, axis=-1), training=False).numpy())


def test_mobilenet_v2_weights_path_gray_equals_rgb(tmp_path):
    rgb = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    path = _randomized_weights_file(rgb, tmp_path / "mobilenet_v2.weights.h5")
    gray = build_backbone("mobilenet_v2", path, (96, 96, 1))
    x = _gray_images(96)
    expected = rgb(keras.applications.mobilenet_v2.preprocess_input(np.repeat(x, 3, axis=-1)), training=False)
    _assert_close(gray(x, training=False).numpy(), expected.numpy())


def test_vgg16_weights_path_gray_equals_rgb_including_borders(tmp_path):
    # At 32x32 every output depends on the zero-padded border, where caffe's
    # per-channel means make a plain summed kernel inexact.
    rgb = keras.applications.VGG16(input_shape=(32, 32, 3), include_top=False, weights=None)
    path = _randomized_weights_file(rgb, tmp_path / "vgg16.weights.h5")
    gray = build_backbone("vgg16", path, (32, 32, 1))
    x = _gray_images(32)
    expected = rgb(keras.applications.vgg16.preprocess_input(np.repeat(x, 3, axis=-1)), training=False).numpy()
    _assert_close(gray(x, training=False).numpy(), expected)
    stem = gray.get_layer("block1_conv1")
    kernel, bias = stem.get_weights()
    assert kernel.shape == (3, 3, 2, 64)  # summed gray kernel + inside-image mask channel
    np.testing.assert_allclose(kernel[:, :, :1], grayscale_stem_kernel(rgb.get_layer("block1_conv1").kernel.numpy()))
    stem.set_weights([np.concatenate([kernel[:, :, :1], 0 * kernel[:, :, 1:]], axis=2), bias])
    assert np.abs(gray(x, training=False).numpy() - expected).max() > 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2", "vgg16"])
def test_random_init_backbones_are_gray_feature_extractors(name):
    model = build_backbone(name, "none", (32, 32, 1))
    assert model.input.shape == (None, 32, 32, 1)
    assert len(model.output.shape) == 4
    batchnorms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batchnorms) == {"efficientnet_lite0": 49, "mobilenet_v2": 52, "vgg16": 0}[name]
    trainable = len(model.trainable_weights)
    for layer in batchnorms:
        layer.trainable = False
    assert len(model.trainable_weights) == trainable - 2 * len(batchnorms)


def _reachable(host="storage.googleapis.com"):
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name, file", [
    ("mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
    ("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_keras_imagenet_weights_fail_fast_offline(name, file):
    if _keras_cache_file(file).exists() or _reachable():
        pytest.skip("ImageNet weights are available here, so building would succeed")
    start = time.monotonic()
    with pytest.raises(BackboneError) as err:
        build_backbone(name, "imagenet", (96, 96, 1))
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert "efficientnet_lite0" in message and "weights: none" in message and file in message


def test_bad_arguments():
    with pytest.raises(BackboneError, match="unknown backbone"):
        build_backbone("resnet50", "none", (32, 32, 1))
    with pytest.raises(BackboneError, match="single-channel"):
        build_backbone("vgg16", "none", (32, 32, 3))
    with pytest.raises(BackboneError, match="existing file"):
        build_backbone("efficientnet_lite0", "/nonexistent/weights.h5", (32, 32, 1))


def test_a_weights_file_that_is_not_one_names_the_parameter_and_the_file(tmp_path):
    from tinygray.models.backbones import BackboneError, build_backbone

    fake = tmp_path / "lite0.h5"
    fake.write_bytes(b"not an HDF5 file")
    with pytest.raises(BackboneError, match=r"parameter 'train_teacher.weights': .*lite0.h5 cannot be loaded as "
                                            r"efficientnet_lite0 weights"):
        build_backbone("efficientnet_lite0", str(fake), (32, 32, 1))

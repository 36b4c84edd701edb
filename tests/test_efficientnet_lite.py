import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from tinygray.models.efficientnet_lite import (
    efficientnet_lite0,
    imagenet_checkpoint_path,
    load_imagenet_weights,
    preprocess_input,
)
from tinygray.models.torch_checkpoint import load_torch_checkpoint


@pytest.fixture(scope="module")
def state_dict():
    return load_torch_checkpoint(imagenet_checkpoint_path())


@pytest.fixture(scope="module")
def imagenet(state_dict):
    model = efficientnet_lite0()
    used = load_imagenet_weights(model, state_dict)
    return model, used


def test_every_tensor_used_exactly_once(state_dict, imagenet):
    model, used = imagenet
    assert used == set(state_dict) and len(used) == 296
    # load_imagenet_weights refuses a second use of a key, and the 247 float
    # tensors fill the 247 model variables one-to-one, so each is used once;
    # the 49 num_batches_tracked counters are consumed and ignored.
    counters = {k for k in state_dict if k.endswith(".num_batches_tracked")}
    assert len(counters) == 49 and counters <= used
    assert len(model.weights) == 296 - 49
    assert model.count_params() == 4_694_024 == sum(state_dict[k].size for k in used - counters)
    np.testing.assert_array_equal(
        model.get_layer("blocks.1.expand_conv").kernel.numpy(),
        state_dict["_blocks.1._expand_conv.weight"].transpose(2, 3, 1, 0))


def test_load_is_strict(state_dict):
    with pytest.raises(ValueError, match="unused"):
        load_imagenet_weights(efficientnet_lite0(include_top=False), state_dict)
    missing = dict(state_dict)
    del missing["_blocks.3._bn1.num_batches_tracked"]
    with pytest.raises(ValueError, match="no tensor"):
        load_imagenet_weights(efficientnet_lite0(), missing)
    with pytest.raises(ValueError):
        load_imagenet_weights(efficientnet_lite0(num_classes=10), state_dict)


def test_model_includes_preprocessing():
    model = efficientnet_lite0((32, 32, 3), include_top=False)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    rescaled = keras.Model(model.input, model.get_layer("rescale").output)(x)
    np.testing.assert_allclose(rescaled, preprocess_input(x), rtol=1e-6, atol=1e-6)
    assert preprocess_input(127.0) == 0.0 and preprocess_input(255.0) == 1.0


def _center_crop(image, size=224, crop_fraction=224 / 256):
    """TF EfficientNet eval preprocessing: central crop of 224/256 of the short side, bicubic resize."""
    h, w, _ = image.shape
    side = int(round(min(h, w) * crop_fraction))
    y, x = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC)
    return np.asarray(crop, dtype=np.float32)


def test_imagenet_predictions_on_sample_images(imagenet):
    model, _ = imagenet
    samples = load_sample_images()
    images = {f.rsplit("/", 1)[-1]: image for f, image in zip(samples.filenames, samples.images)}
    batch = np.stack([_center_crop(images["china.jpg"]), _center_crop(images["flower.jpg"])])
    probs = keras.ops.softmax(model(batch, training=False)).numpy()
    # Measured: china.jpg -> 698 "palace" (p=0.35; then 442 "bell cote", 663 "monastery"),
    # flower.jpg -> 985 "daisy" (p=0.32).
    assert probs.argmax(axis=1).tolist() == [698, 985]
    assert (probs.max(axis=1) > 0.25).all()

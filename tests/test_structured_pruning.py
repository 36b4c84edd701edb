import keras
import numpy as np
import pytest

from tinygray.models.cnn import build_cnn
from tinygray.models.files import count_params
from tinygray.compress.filter_pruning import filter_l1_norms, kept_filter_count, prune_filters

from conftest import accuracy


def conv_widths(model):
    return {layer.name: layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}


def randomize_batch_norms(model, rng):
    """Non-trivial statistics, so taking another channel's mean or variance changes the outputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.5, 2.0, n)])


def test_filter_l1_norms_sum_each_output_filter():
    model = build_cnn((8, 8, 1), 10, [2, 3])
    kernel = np.zeros((3, 3, 1, 2), dtype=np.float32)
    kernel[0, 0, 0, 0], kernel[1, 2, 0, 0], kernel[2, 2, 0, 1] = -1.5, 2.0, 0.25
    model.get_layer("block0_conv0").kernel.assign(kernel)
    norms = filter_l1_norms(model)
    assert set(norms) == {"block0_conv0", "block1_conv0"}
    np.testing.assert_allclose(norms["block0_conv0"], [3.5, 0.25])
    assert norms["block1_conv0"].shape == (3,)


def test_kept_filter_count_rounds_up_without_float_noise():
    assert kept_filter_count(10, 0.7) == 3  # (1 - 0.7) * 10 == 3.0000000000000004 in floats
    assert kept_filter_count(8, 0.5) == 4
    assert kept_filter_count(8, 0.3) == 6  # ceil(5.6)
    assert kept_filter_count(4, 0.99) == 1
    assert kept_filter_count(16, 0.0) == 16


def test_pruned_model_is_really_smaller(digits):
    images, _ = digits
    model = build_cnn(images.shape[1:], 10, [10, 20], convs_per_block=2, dropout=0.1)
    pruned = prune_filters(model, 0.7)
    assert conv_widths(pruned) == {"block0_conv0": 3, "block0_conv1": 3, "block1_conv0": 6, "block1_conv1": 6}
    assert pruned.get_layer("block1_bn1").gamma.shape == (6,)
    assert pruned.get_layer("logits").kernel.shape == (6, 10)
    assert count_params(pruned)[0] < count_params(model)[0] / 5
    assert pruned.predict(images[:7], verbose=0).shape == (7, 10)
    # the original is left untouched
    assert conv_widths(model)["block1_conv1"] == 20


def test_fraction_zero_keeps_the_outputs(trained_digits_cnn, digits_split):
    images, _ = digits_split["test"]
    same = prune_filters(trained_digits_cnn, 0.0)
    assert conv_widths(same) == conv_widths(trained_digits_cnn)
    np.testing.assert_allclose(same.predict(images, verbose=0), trained_digits_cnn.predict(images, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize("convs_per_block", [1, 2])
def test_removing_dead_filters_keeps_the_outputs(digits, convs_per_block):
    """Filters whose kernel, BN gamma and beta are zero output relu(0) = 0 everywhere, so they have
    the smallest L1 norm and removing them must not change a single logit. Any slicing mistake (wrong
    channels of a kernel, of a BN statistic, of the next conv's input or of the Dense rows) would."""
    images, _ = digits
    rng = np.random.default_rng(0)
    model = build_cnn(images.shape[1:], 10, [8, 16], convs_per_block=convs_per_block)
    randomize_batch_norms(model, rng)
    dead = {}
    for name, width in conv_widths(model).items():
        dead[name] = np.sort(rng.choice(width, size=width // 4, replace=False))  # scattered, not a tail
        conv, bn = model.get_layer(name), model.get_layer(name.replace("conv", "bn"))
        kernel, (gamma, beta, mean, variance) = np.asarray(conv.kernel), bn.get_weights()
        kernel[..., dead[name]], gamma[dead[name]], beta[dead[name]] = 0.0, 0.0, 0.0
        conv.kernel.assign(kernel)
        bn.set_weights([gamma, beta, mean, variance])

    pruned = prune_filters(model, 0.25)
    assert conv_widths(pruned) == {name: width - len(dead[name]) for name, width in conv_widths(model).items()}
    alive = np.setdiff1d(np.arange(8), dead["block0_conv0"])
    first_kernel = np.asarray(model.get_layer("block0_conv0").kernel)
    np.testing.assert_array_equal(pruned.get_layer("block0_conv0").kernel, first_kernel[..., alive])
    assert all(np.all(norms > 0) for norms in filter_l1_norms(pruned).values())
    np.testing.assert_allclose(pruned.predict(images[:200], verbose=0), model.predict(images[:200], verbose=0),
                               atol=1e-5)


def test_fine_tuned_pruned_model_stays_accurate(trained_digits_cnn, digits_split):
    keras.utils.set_random_seed(0)
    (train_images, train_labels), (test_images, test_labels) = digits_split["train"], digits_split["test"]
    pruned = prune_filters(trained_digits_cnn, 0.25)
    assert conv_widths(pruned) == {"block0_conv0": 6, "block1_conv0": 12}
    pruned.compile(optimizer=keras.optimizers.Adam(0.005),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(train_images, train_labels, epochs=5, batch_size=64, verbose=0)
    teacher_accuracy = accuracy(trained_digits_cnn.predict(test_images, verbose=0), test_labels)
    pruned_accuracy = accuracy(pruned.predict(test_images, verbose=0), test_labels)
    assert pruned_accuracy > 0.85 and pruned_accuracy > teacher_accuracy - 0.1  # ~0.91 vs ~0.95


def test_unsupported_architectures_name_the_layer():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    flat = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten(name="flatten")(x)))
    with pytest.raises(ValueError, match="'flatten'"):
        prune_filters(flat, 0.5)

    y = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    residual = keras.layers.Add(name="add")([x, y])
    branched = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(residual)))
    with pytest.raises(ValueError, match="'add'"):
        prune_filters(branched, 0.5)

    with pytest.raises(ValueError, match="fraction"):
        prune_filters(build_cnn((8, 8, 1), 10, [4]), 1.0)

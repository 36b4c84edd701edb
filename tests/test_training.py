"""tinygray.train.loop: the BatchNorm recalibration before each validation."""
import keras
import numpy as np

from tinygray.models.cnn import BN_MOMENTUM, build_cnn

from tinygray.models.files import uncompiled_copy
from tinygray.train import loop
from conftest import randomize_batch_norms


def test_recalibration_sets_each_trainable_batch_norm_to_the_mean_of_its_batch_statistics(digits_split):
    """RecalibrateBatchNorm's compiled passes give what eight eager training-mode passes with momentum k/(k+1)
    give (the plain running mean of the batches' statistics); a frozen layer keeps its statistics."""
    images = digits_split["train"][0]
    keras.utils.set_random_seed(0)
    model = build_cnn(images.shape[1:], 10, [4, 8])
    randomize_batch_norms(model)
    model.get_layer("block1_bn0").trainable = False
    frozen = [np.asarray(w) for w in model.get_layer("block1_bn0").get_weights()]
    eager = uncompiled_copy(model)
    eager.get_layer("block1_bn0").trainable = False

    callback = loop.RecalibrateBatchNorm(images, batch_size=32, num_batches=5, seed=3)
    callback.set_model(model)
    callback.on_test_begin()

    layers = [layer for layer in eager.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    order = np.random.default_rng(3).permutation(len(images))
    for k in range(5):
        for layer in layers:
            layer.momentum = k / (k + 1)
        eager(np.asarray(images[np.sort(order[k * 32:(k + 1) * 32])], dtype="float32"), training=True)

    mine, expected = model.get_layer("block0_bn0"), eager.get_layer("block0_bn0")
    np.testing.assert_allclose(np.asarray(mine.moving_mean), np.asarray(expected.moving_mean), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mine.moving_variance), np.asarray(expected.moving_variance), rtol=1e-4, atol=1e-5)
    assert mine.momentum == BN_MOMENTUM  # restored for training
    for kept, now in zip(frozen, model.get_layer("block1_bn0").get_weights()):
        np.testing.assert_array_equal(kept, now)
    callback.on_test_begin()  # a second validation reuses the compiled pass and gives the same statistics
    np.testing.assert_allclose(np.asarray(model.get_layer("block0_bn0").moving_mean),
                               np.asarray(eager.get_layer("block0_bn0").moving_mean), rtol=1e-4, atol=1e-5)


def test_the_training_batches_reach_tensorflow_without_autotuning_and_in_order():
    """Under TensorFlow, Keras feeds a PyDataset through tf.data; with autotuning on, each epoch's new iterator
    waited for the last one's tuning thread (20-30 s of an 80-s epoch on the brain MRI). The batches go through
    Keras' ordered queue instead, which turns autotuning off, and arrive as Batches makes them."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4, 1)
    expected = loop.Batches(images, np.arange(10), 3, seed=1)
    expected = [int(label) for i in range(len(expected)) for label in expected[i][1]]
    batches = loop.Batches(images, np.arange(10), 3, seed=1)
    assert batches.workers == loop.workers_for(keras.backend.backend())
    assert loop.workers_for("jax") == 1  # no tf.data there; a queue would reorder the batches JAX runs saw
    batches.workers = loop.workers_for("tensorflow")  # what the same Batches asks for under TensorFlow
    adapter = PyDatasetAdapter(batches, shuffle=False)
    dataset = adapter.get_tf_dataset()
    assert dataset.options().autotune.enabled is False
    adapter.on_epoch_begin()
    assert [int(label) for _, labels in dataset for label in labels.numpy()] == expected
    adapter.on_epoch_end()

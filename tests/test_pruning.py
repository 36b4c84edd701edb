from functools import partial

import keras
import numpy as np
import pytest

from tinygray.compress import magnitude_pruning
from tinygray.models.cnn import build_cnn


def test_polynomial_schedule_shape():
    schedule = partial(magnitude_pruning.polynomial_sparsity, final_sparsity=0.8, begin_step=10, end_step=110)
    assert schedule(0) == 0.0
    assert schedule(10) == pytest.approx(0.0)
    assert schedule(110) == pytest.approx(0.8) and schedule(500) == pytest.approx(0.8)
    # cubic: half-way through, 1 - 0.5^3 = 87.5% of the target is reached
    assert schedule(60) == pytest.approx(0.8 * 0.875)
    values = [schedule(s) for s in range(0, 120)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_magnitude_mask_prunes_exactly_the_smallest():
    weights = np.array([[0.1, -5.0], [0.3, -0.2]], dtype=np.float32)
    mask = magnitude_pruning.magnitude_mask(weights, 0.5)
    np.testing.assert_array_equal(mask, [[0, 1], [1, 0]])
    assert magnitude_pruning.magnitude_mask(weights, 0.0).all()


def test_callback_reaches_target_sparsity_and_keeps_learning(digits_split):
    keras.utils.set_random_seed(0)
    images, labels = digits_split["train"]
    model = build_cnn(images.shape[1:], 10, [8, 16])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    steps = 4 * int(np.ceil(len(images) / 64))
    schedule = partial(magnitude_pruning.polynomial_sparsity, final_sparsity=0.6, begin_step=0, end_step=steps // 2)
    history = model.fit(images, labels, epochs=4, batch_size=64, verbose=0,
                        callbacks=[magnitude_pruning.MagnitudePruning(schedule, update_every=3)])
    sparsity = magnitude_pruning.layer_sparsity(model)
    assert set(sparsity) == {"block0_conv0", "block1_conv0", "logits"}
    assert all(value == pytest.approx(0.6, abs=0.01) for value in sparsity.values())
    assert history.history["accuracy"][-1] > 0.5
    # BatchNorm and biases are left dense
    assert np.count_nonzero(model.get_layer("block0_bn0").gamma) == 8


def test_budget_keeps_the_most_compression_within_the_validation_drop():
    """Levels are tried from the most compressed down, and the search stops at the first within budget."""
    val_accuracy = {0.75: 0.80, 0.5: 0.885, 0.25: 0.90}
    tried = []

    def prune_and_fine_tune(level):
        tried.append(level)
        return f"model@{level}", {"val_accuracy": val_accuracy[level]}, {"loss": [1.0]}

    choice = magnitude_pruning.most_compressed_within_budget([0.25, 0.5, 0.75], prune_and_fine_tune, 0.90, 0.02)
    assert choice.level == 0.5 and choice.model == "model@0.5" and choice.within_budget
    assert tried == [0.75, 0.5]  # 0.25 never trained: the budget was met before it
    assert [t["within_budget"] for t in choice.trials] == [False, True]
    exact = magnitude_pruning.most_compressed_within_budget([0.5, 0.75], prune_and_fine_tune, 0.895, 0.01)
    assert exact.level == 0.5  # 0.885 is exactly 0.01 below 0.895: inside the budget


def test_budget_that_nothing_meets_keeps_the_least_compression_and_says_so():
    def prune_and_fine_tune(level):
        return level, {"val_accuracy": 0.5}, {}

    choice = magnitude_pruning.most_compressed_within_budget([0.5, 0.25], prune_and_fine_tune, 0.9, 0.01)
    assert choice.level == 0.25 and not choice.within_budget and len(choice.trials) == 2


JAX_PRUNING = """
from functools import partial
from tinygray.train import backend
backend.select("jax")
import keras
import numpy as np
from sklearn.datasets import load_digits
from tinygray.compress import magnitude_pruning
from tinygray.models.cnn import build_cnn
digits = load_digits()
images, labels = (digits.images * 16).clip(0, 255).astype("uint8")[..., None][:1200], digits.target[:1200]
keras.utils.set_random_seed(0)
model = build_cnn(images.shape[1:], 10, [8, 16])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
schedule = partial(magnitude_pruning.polynomial_sparsity, final_sparsity=0.6, begin_step=0, end_step=38)
history = model.fit(images, labels, epochs=4, batch_size=64, verbose=0,
                    callbacks=[magnitude_pruning.MagnitudePruning(schedule, update_every=3)])
print(backend.current(), history.history["accuracy"][-1], *magnitude_pruning.layer_sparsity(model).values())
"""


def test_pruning_works_under_jax_where_fit_holds_the_weights_outside_the_variables():
    """Under Keras' JAX backend a callback that reads cached kernels during fit finds None (TypeError), and
    weights it assigns are lost unless it goes through `model`: the prune stage runs on train_student.backend."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", JAX_PRUNING], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    name, accuracy, *sparsity = result.stdout.splitlines()[-1].split()
    assert name == "jax" and float(accuracy) > 0.5
    assert all(float(value) == pytest.approx(0.6, abs=0.01) for value in sparsity)


def test_the_sparsity_ramp_counts_whole_epochs_including_the_last_partial_batch():
    """129 images at batch 64 are 3 steps an epoch, not 2: a ramp that ended early would hold full sparsity
    for epochs the schedule meant to still be rising."""
    assert magnitude_pruning.ramp_steps(2, 129, 64) == 6
    assert magnitude_pruning.ramp_steps(2, 128, 64) == 4

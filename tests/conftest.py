import os

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as (N, 8, 8, 1) uint8 pixels: real images, fast to train on."""
    from tinygray.data import preprocess

    images, labels = preprocess.load_builtin("digits")
    return preprocess.to_grayscale(images), labels


@pytest.fixture(scope="session")
def digits_split(digits):
    from tinygray.data import preprocess

    images, labels = digits
    idx = preprocess.stratified_split(labels, 0.15, 0.15, seed=0)
    return {name: (images[i], labels[i]) for name, i in idx.items()}


@pytest.fixture(scope="session")
def trained_digits_cnn(digits_split):
    """A small CNN trained for a few epochs on digits: accurate enough that conversions can be compared."""
    import keras

    from tinygray.models.cnn import build_cnn

    keras.utils.set_random_seed(0)
    images, labels = digits_split["train"]
    model = build_cnn(images.shape[1:], 10, [8, 16])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images, labels, epochs=15, batch_size=64, verbose=0)
    return model


def accuracy(logits, labels):
    return float(np.mean(np.asarray(logits).argmax(1) == labels))


@pytest.fixture
def frontier_rows():
    """Variants of every kind for the Pareto front and its plot: ties, dominated rows, an odd kind."""
    return [
        {"name": "teacher", "kind": "teacher", "size_bytes": 4_000_000, "accuracy": 0.99,
         "accuracy_ci_low": 0.98, "accuracy_ci_high": 0.995},
        {"name": "scratch", "kind": "scratch", "size_bytes": 20_000, "accuracy": 0.95},  # same size, less accurate
        {"name": "distilled", "kind": "distilled", "size_bytes": 20_000, "accuracy": 0.97,
         "accuracy_ci_low": 0.955, "accuracy_ci_high": 0.98},
        {"name": "pruned", "kind": "pruned", "size_bytes": 12_000, "accuracy": 0.96},  # int8 is as good, smaller
        {"name": "int8", "kind": "int8", "size_bytes": 6_000, "accuracy": 0.96},
        {"name": "int8_twin", "kind": "int8", "size_bytes": 6_000, "accuracy": 0.96},  # exact tie: both stay
        {"name": "wide", "kind": "scratch", "size_bytes": 50_000, "accuracy": 0.90},  # beaten on both axes
        {"name": "odd", "kind": "qat", "size_bytes": 3_000, "accuracy": 0.50},  # smallest: on the front
    ]


# The longest files first: with two workers and a file kept on one (`--dist loadfile`), the 10-minute
# end-to-end module started late left one worker idle at the end. xdist hands files out in this order only with
# --no-loadscope-reorder (pyproject.toml); by default it sorts them by their number of tests, and the e2e module
# started about 90 s in. Within a file the order is kept (the e2e module's forced rerun must run last).
SLOW_FIRST = ("test_pipeline_e2e.py", "test_scaling.py", "test_own_data.py", "test_reproducibility.py",
              "test_teacher.py", "test_tracking.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: each file's own order stays


def randomize_batch_norms(model, seed=0):
    """BatchNorm statistics and scales that are not the identity, so that folding or copying them wrong shows."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.5, 2.0, n)])

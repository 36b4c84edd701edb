"""The Keras backend a training stage runs on (train_student.backend), chosen before Keras is imported.

Keras 3's TensorFlow backend pays a large fixed cost per training step on tiny models (keras-team/keras#18648):
here a 10k-parameter student trains about 2x faster under JAX (README, "Image size"). A `.keras` file does not
record its backend, so a student trained under JAX is pruned, converted to TFLite and benchmarked under
TensorFlow like any other. The teacher stays on TensorFlow: EfficientNet-Lite0 under JAX did not finish an
epoch in 300 s where TensorFlow took 20-49 s.

Deliberately free of Keras and TensorFlow imports: it must run before either is loaded.
"""
from __future__ import annotations

import os
import sys

from tinygray.pipeline.choices import BACKENDS


def select(backend: str) -> None:
    """Make `backend` the one Keras loads. Call it before anything imports Keras; if Keras is already loaded
    (a test importing the stage) on another backend, say so instead of training on the wrong one."""
    if backend not in BACKENDS:
        raise ValueError(f"parameter 'train_student.backend' must be one of {BACKENDS}, got {backend!r}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != backend:
            raise RuntimeError(f"Keras is already loaded on the {loaded} backend; 'train_student.backend: {backend}' "
                               "needs a fresh process (run the stage as a script)")
        return
    os.environ["KERAS_BACKEND"] = backend


def current() -> str:
    """The backend Keras runs on (loads Keras)."""
    import keras

    return keras.backend.backend()

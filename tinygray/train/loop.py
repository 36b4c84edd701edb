"""One training loop for teacher, student and control: Keras `fit`, early stopping on validation."""
from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np

from tinygray.pipeline import progress

# (curve, step, {metric: value}): what fit reports after each epoch to whoever records it
EpochLog = Callable[[str, int, dict], None]


class Batches(keras.utils.PyDataset):
    """(images, targets) batches read from (memory-mapped) arrays on demand, so a training set larger than
    RAM can be fitted. Shuffling is a permutation drawn from (seed, epoch): same seed, same batches.

    With an `augment.Augmentation`, epoch e yields view e mod views of every image (view 0: the images
    themselves); with `targets_per_view`, targets is (views, N, ...) and each view gets its own targets
    (the teacher's logits for that view), else every view shares them (labels). With `mixup` > 0 (and
    one-hot float targets), each image is blended with another of its batch, and so is its target, with a
    weight drawn from Beta(mixup, mixup) (Zhang et al. 2018); the draws, too, follow (seed, epoch, batch).
    """

    def __init__(self, images, targets, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 augmentation=None, targets_per_view: bool = False, mixup: float = 0.0):
        super().__init__(workers=workers_for(keras.backend.backend()))
        self.images, self.targets = images, targets
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.augmentation, self.targets_per_view, self.mixup = augmentation, targets_per_view, float(mixup)
        self.num_views = augmentation.views if augmentation is not None else 1
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if targets_per_view and len(targets) != self.num_views:
            raise ValueError(f"{self.num_views} views but targets for {len(targets)}")
        num_targets = targets.shape[1] if targets_per_view else len(targets)
        if num_targets != len(images):
            raise ValueError(f"{len(images)} images but {num_targets} targets")
        self.epoch = 0
        self.order = self._order()

    def _order(self):
        indices = np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch]).permutation(indices) if self.shuffle else indices

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        # sorted within the batch: the memmap is read forwards, the batch's content is the same set
        idx = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        view = self.epoch % self.num_views
        images = np.asarray(self.images[idx])
        if view:
            images = self.augmentation.view(images, idx, view)
        targets = np.asarray((self.targets[view] if self.targets_per_view else self.targets)[idx])
        if self.mixup:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            partner = rng.permutation(len(idx))
            weight = rng.beta(self.mixup, self.mixup, size=len(idx)).astype(np.float32)
            images = (weight[:, None, None, None] * images + (1 - weight[:, None, None, None]) * images[partner])
            targets = weight[:, None] * targets + (1 - weight[:, None]) * targets[partner]
        return images, targets

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order()


def workers_for(backend: str) -> int:
    """Threads that read Batches for Keras. Under TensorFlow two: Keras' ordered queue then stands in front of
    tf.data, which runs without autotuning (Keras turns it off for a queued dataset). With autotuning on, every
    new epoch's iterator waited for the last one's tuning thread to wake from a sleep that grows with the epoch:
    20-30 s of an 80-s epoch on the brain MRI's cut student (docs/results.md, "Where the time goes"); the
    batches and their order are the same. Under JAX no tf.data runs, and the queue would read the epochs'
    batches in another order than the default runs were trained on: one, as before."""
    return 2 if backend == "tensorflow" else 1


class EpochProgress(keras.callbacks.Callback):
    """Within a training epoch: where there is no terminal (Keras' own bar needs one), a line at most every
    progress.LOG_EVERY_SECONDS with the step and the running loss, so a one-minute teacher epoch is not one line at its
    end. On a terminal fit shows Keras' progress bar instead."""

    # Keras may call it from a worker thread, after the step: a callback with a per-step hook that is not async_safe
    # makes every step wait for the previous one and copy its logs to NumPy (what that costs a 14-px student's
    # epoch under JAX: docs/results.md, "Where the time goes"); this one only reads the loss when it prints
    async_safe = True

    def __init__(self, name: str, steps_per_epoch: int):
        super().__init__()
        self.name, self.steps_per_epoch = name, steps_per_epoch
        self.epoch, self.last = 0, time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last = epoch + 1, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last >= progress.LOG_EVERY_SECONDS and batch + 1 < self.steps_per_epoch:
            loss = f", loss {float(logs['loss']):.4f}" if logs and "loss" in logs else ""
            print(f"{self.name}: epoch {self.epoch}, step {batch + 1}/{self.steps_per_epoch}{loss}", flush=True)
            self.last = now


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Before every validation, recompute the moving statistics of each trainable BatchNormalization layer
    from `num_batches` training batches at the current weights (an exact running mean over them: "precise
    BN"), so validation judges the network as it is now. A CNN trained from scratch on a few hundred
    128-px images takes ~10 steps an epoch; its moving statistics then lag the weights by several
    epochs, validation sees one class, and early stopping ended training at chance (0.500 for 5 epochs,
    then 0.875, 0.963, 1.000 once the statistics caught up). Frozen layers are left alone."""

    def __init__(self, images: np.ndarray, batch_size: int, num_batches: int = 8, seed: int = 0):
        super().__init__()
        self.images, self.batch_size, self.num_batches, self.seed = images, batch_size, num_batches, seed
        self._forward = None  # the compiled training-mode forward pass, traced once (_compiled_forward)

    def on_test_begin(self, logs=None):
        model = self.model
        layers = [layer for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
        if not layers:
            return
        # With momentum 0 a training-mode pass leaves each layer's moving statistics at the batch's own, so the
        # mean over the batches is the exact running mean; one compiled pass per batch instead of an eager one
        # (what that saves: docs/results.md, "Where the time goes")
        momenta = [layer.momentum for layer in layers]
        for layer in layers:
            layer.momentum = 0.0
        if self._forward is None:
            self._forward = _compiled_forward(model)
        variables = model.non_trainable_variables
        position = {id(v): i for i, v in enumerate(variables)}  # by identity: == on a variable compares values
        moving = [(position[id(v)], v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)]
        trainable, non_trainable = [v.value for v in model.trainable_variables], [v.value for v in variables]
        order = np.random.default_rng(self.seed).permutation(len(self.images))
        batches = min(self.num_batches, -(-len(order) // self.batch_size))
        sums = [np.zeros(v.shape, dtype="float64") for _, v in moving]
        for k in range(batches):
            idx = np.sort(order[k * self.batch_size:(k + 1) * self.batch_size])
            updated = self._forward(trainable, non_trainable, np.asarray(self.images[idx], dtype="float32"))
            for total, (index, _) in zip(sums, moving):
                total += np.asarray(updated[index], dtype="float64")
        for total, (_, variable) in zip(sums, moving):
            variable.assign((total / batches).astype("float32"))
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _compiled_forward(model: keras.Model):
    """(trainable values, non-trainable values, images) -> the non-trainable values after one training-mode
    pass (BatchNorm's updated moving statistics), compiled by the backend: jax.jit or tf.function. Layer
    attributes such as BatchNormalization.momentum are read once, when it is traced."""
    def forward(trainable, non_trainable, images):
        return model.stateless_call(trainable, non_trainable, images, training=True)[1]

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(forward)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(forward, reduce_retracing=True)
    return forward


class ChanceLevelError(RuntimeError):
    """A trained model is no better than always answering the most common class; the message says what was
    seen and what to try."""


def require_above_chance(what: str, accuracy: float, labels: np.ndarray, split: str = "validation",
                         hint: str = "") -> None:
    """Stop the pipeline when `what` is not clearly above chance on `split` (stats.above_chance): a
    collapsed teacher would be distilled from and reported as if it were a result."""
    from tinygray.evaluate.stats import above_chance

    verdict = above_chance(accuracy, labels)
    if not verdict["above"]:
        raise ChanceLevelError(
            f"{what}: {split} accuracy {accuracy:.4f} on {len(labels)} images is not clearly above the majority-class "
            f"rate {verdict['majority_rate']:.4f} (one-sided binomial p = {verdict['p_value']:.3g}): it is no better than "
            f"always answering the most common class. {hint}".rstrip())


def seed_everything(seed: int) -> None:
    """Same data, params and seed give the same weights: seeds Python, NumPy and the backend, and on
    TensorFlow makes its ops deterministic (slightly slower on CPU, worth it for `dvc repro -f` giving
    identical metrics). JAX on a CPU is deterministic already (XLA compiles one fixed program)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def accuracy_metric(metric_fn=None, one_hot: bool = False) -> keras.metrics.Metric:
    """One metric name, `accuracy`, whatever the targets look like, so every history reads alike."""
    if metric_fn is None:
        return keras.metrics.CategoricalAccuracy(name="accuracy") if one_hot else \
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return keras.metrics.MeanMetricWrapper(metric_fn, name="accuracy")


SCHEDULES = ("plateau", "cosine")


def fit(model: keras.Model, train: tuple, val: tuple, *, loss, metric: keras.metrics.Metric,
        epochs: int, batch_size: int, learning_rate: float, seed: int, patience: int | None = None,
        schedule: str = "plateau", callbacks: list | None = None, augmentation=None,
        targets_per_view: bool = False, mixup: float = 0.0, log_epoch: EpochLog | None = None,
        curve: str = "", first_step: int = 1) -> tuple[dict, dict]:
    """Train with Adam on batches streamed from the (memory-mapped) arrays, shuffled from `seed`, each
    epoch on the next augmented view if `augmentation` is given (Batches). Returns (metrics, history).

    With `patience`, the best epoch's weights on validation accuracy are kept (model selection sees the
    validation split only, never test, and always its plain images), and `schedule` sets the step size:
    "plateau" cuts it when validation loss stalls and stops after `patience` epochs without a gain;
    "cosine" decays it to zero over exactly `epochs` epochs and never stops early, so every run costs the
    same and no run pays a patience tail after its best epoch. Without `patience`: constant step size,
    the last epoch's weights (fine-tuning, where callbacks own the weights).

    `log_epoch(curve, step, metrics)` is called at the end of every epoch (step = first_step + epoch - 1), so a
    stage can send each curve to MLflow while the training runs (StageRun.log_epoch)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    train_batches = Batches(*train, batch_size, seed=seed, augmentation=augmentation, targets_per_view=targets_per_view,
                            mixup=mixup)
    step_size = learning_rate
    callbacks = list(callbacks or [])
    if patience is not None and schedule == "cosine":
        step_size = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * len(train_batches))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=epochs,
                                                       restore_best_weights=True))
    elif patience is not None:
        # Cutting the step size when validation loss stalls was worth +1.4 points of test accuracy for
        # the 10k-parameter student here (97.4% vs 96.0%, same seed) at no cost in epochs.
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3,
                                                           patience=max(2, patience // 3), min_lr=1e-5))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                                       restore_best_weights=True))
    # validation judges the network as it is, not BatchNorm statistics that lag it (RecalibrateBatchNorm)
    callbacks.append(RecalibrateBatchNorm(train[0], batch_size, seed=seed))
    model.compile(optimizer=keras.optimizers.Adam(step_size), loss=loss, metrics=[metric])
    start = time.perf_counter()
    if log_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: log_epoch(curve, first_step + epoch, dict(logs or {}))))
    # a progress bar within each epoch on a terminal; elsewhere a line per epoch and one every ~20 s within it
    if not progress.on_terminal():
        callbacks.append(EpochProgress(model.name, len(train_batches)))
    history = model.fit(train_batches, validation_data=Batches(*val, batch_size, shuffle=False),
                        epochs=epochs, callbacks=callbacks, verbose=1 if progress.on_terminal() else 2)
    seconds = time.perf_counter() - start
    val_accuracy = history.history["val_accuracy"]
    best = int(np.argmax(val_accuracy)) if patience is not None else len(val_accuracy) - 1
    print(f"{model.name}: {stop_reason(len(val_accuracy), epochs, patience, schedule)}; kept epoch {best + 1} "
          f"(val_accuracy {val_accuracy[best]:.4f}), {seconds:.0f} s", flush=True)
    metrics = {
        "epochs": len(val_accuracy),
        "best_epoch": best + 1,
        "val_accuracy": round(float(val_accuracy[best]), 4),
        "val_loss": round(float(history.history["val_loss"][best]), 4),
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / len(val_accuracy), 3),
    }
    return metrics, history.history


def stop_reason(trained: int, epochs: int, patience: int | None, schedule: str) -> str:
    """Why a fit() ended, in words, for the stage log."""
    if patience is not None and schedule == "plateau" and trained < epochs:
        return f"stopped at epoch {trained} of {epochs}: no val_accuracy gain for {patience} epochs"
    return f"ran all {epochs} epochs" + (f" ({schedule} schedule)" if patience is not None else "")

"""Magnitude pruning as a plain Keras 3 callback.

tensorflow-model-optimization would do this, but it needs Keras 2 (tf_keras), switches the whole
process to it and rejects Keras 3 models, so the schedule and masks live here instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
import numpy as np

PRUNABLE_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def polynomial_sparsity(step: int, *, final_sparsity: float, begin_step: int, end_step: int,
                        initial_sparsity: float = 0.0, power: float = 3.0) -> float:
    """Zhu & Gupta (2017) schedule: prune fast while the network has redundancy, slowly near the target."""
    if step < begin_step:
        return 0.0
    progress = min(1.0, (step - begin_step) / max(1, end_step - begin_step))
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** power


def prunable_kernels(model: keras.Model) -> dict[str, keras.Variable]:
    """Kernels of conv and dense layers by layer name; biases and BatchNorm stay dense (tiny, and
    sparse BN scales would not shrink anything after TFLite folds them into the convolutions)."""
    return {layer.name: layer.kernel for layer in model.layers if isinstance(layer, PRUNABLE_LAYERS)}


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Mask that zeroes exactly round(sparsity * size) of the smallest-magnitude weights."""
    num_pruned = int(round(sparsity * weights.size))
    mask = np.ones(weights.size, dtype=weights.dtype)
    if num_pruned:
        mask[np.argsort(np.abs(weights), axis=None, kind="stable")[:num_pruned]] = 0
    return mask.reshape(weights.shape)


class MagnitudePruning(keras.callbacks.Callback):
    """Raises each prunable kernel's sparsity along `schedule(step)`, recomputing masks every
    `update_every` steps and reapplying them after every step, so pruned weights stay zero while the
    optimizer updates the rest. The model itself never changes: at the end there is nothing to strip.

    The kernels are looked up through `self.model` at every use, never cached: under Keras' JAX backend `fit`
    holds the weights outside the variables (their values are None meanwhile), and only reading `self.model`
    syncs them back and makes the next step start from what this callback assigned."""

    def __init__(self, schedule, update_every: int = 10):
        super().__init__()
        self.schedule = schedule
        self.update_every = update_every
        self.step = 0
        self.masks: dict[str, np.ndarray] = {}

    def on_train_begin(self, logs=None):
        self._update_masks()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.update_every == 0:
            self._update_masks()
        self._apply_masks()

    def on_train_end(self, logs=None):
        self._update_masks()
        self._apply_masks()

    def _update_masks(self):
        sparsity = self.schedule(self.step)
        self.masks = {name: magnitude_mask(np.asarray(kernel), sparsity)
                      for name, kernel in prunable_kernels(self.model).items()}

    def _apply_masks(self):
        for name, kernel in prunable_kernels(self.model).items():
            kernel.assign(np.asarray(kernel) * self.masks[name])


def ramp_steps(ramp_epochs: int, num_images: int, batch_size: int) -> int:
    """Steps over which sparsity rises: `ramp_epochs` whole epochs of `num_images` training images."""
    return ramp_epochs * -(-num_images // batch_size)


def prune_by_magnitude(model: keras.Model, sparsity: float, fine_tune, *, ramp_steps: int,
                       mask_update_steps: int) -> tuple[dict, dict]:
    """Fine-tune `model` (`fine_tune(model, callbacks=...)`, e.g. a partial of loop.fit) while its
    smallest weights go to zero, rising to `sparsity` over `ramp_steps` steps, then held. The one recipe
    both the distilled student and its scratch control are pruned with. Returns fine_tune's (metrics, history)."""
    schedule = partial(polynomial_sparsity, final_sparsity=sparsity, begin_step=0, end_step=ramp_steps)
    return fine_tune(model, callbacks=[MagnitudePruning(schedule, mask_update_steps)])


def layer_sparsity(model: keras.Model) -> dict[str, float]:
    """Fraction of exactly-zero weights in each prunable kernel."""
    kernels = {name: np.asarray(kernel) for name, kernel in prunable_kernels(model).items()}
    return {name: round(1.0 - np.count_nonzero(k) / k.size, 4) for name, k in kernels.items()}


@dataclass
class BudgetChoice:
    """The most compressed level whose fine-tuned validation accuracy stayed within the budget, and every
    level tried on the way: [{level, val_accuracy, within_budget}]."""
    level: float
    model: keras.Model
    metrics: dict
    history: dict
    within_budget: bool
    trials: list[dict]


def most_compressed_within_budget(levels: list[float], prune_and_fine_tune, baseline_val_accuracy: float,
                                  max_val_drop: float) -> BudgetChoice:
    """Try `levels` (sparsities or filter fractions) from the most to the least compression; keep the first
    whose validation accuracy after fine-tuning is at most `max_val_drop` below the unpruned model's.
    `prune_and_fine_tune(level)` returns (model, metrics with val_accuracy, history). When no level fits, the
    least compressed one is kept and `within_budget` is False: the report says so, the pipeline goes on.
    Defaults tuned on digits cost 2.4 and 6.0 points on Fashion-MNIST; a budget adapts to the data instead."""
    trials, choice = [], None
    for level in sorted(levels, reverse=True):
        model, metrics, history = prune_and_fine_tune(level)
        fits = metrics["val_accuracy"] >= baseline_val_accuracy - max_val_drop - 1e-9
        trials.append({"level": level, "val_accuracy": metrics["val_accuracy"], "within_budget": fits})
        print(f"prune: level {level}: val_accuracy {metrics['val_accuracy']:.4f} "
              f"({'within' if fits else 'outside'} {max_val_drop} of {baseline_val_accuracy:.4f})", flush=True)
        choice = BudgetChoice(level, model, metrics, history, fits, trials)
        if fits:
            break
    return choice


class KeepZeros(keras.callbacks.Callback):
    """Weights that are exactly zero when training starts (a magnitude-pruned model) stay zero after every
    step, so fine-tuning the model further, as quantization-aware training does, keeps its sparsity."""

    def on_train_begin(self, logs=None):
        self.kernels = prunable_kernels(self.model)
        self.masks = {name: (np.asarray(kernel) != 0).astype(np.asarray(kernel).dtype)
                      for name, kernel in self.kernels.items()}

    def on_train_batch_end(self, batch, logs=None):
        for name, kernel in self.kernels.items():
            kernel.assign(np.asarray(kernel) * self.masks[name])

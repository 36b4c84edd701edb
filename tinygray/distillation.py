"""Hinton et al. (2015) knowledge distillation from stored teacher logits.

The teacher runs once (the soft_targets stage); the student trains with plain `fit` on targets that
pack the one-hot labels and the teacher's logits side by side, so every Keras callback still works.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """(N,) labels and (N, C) logits -> (N, 2C) float32 [one-hot labels | teacher logits]."""
    num_classes = teacher_logits.shape[1]
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    return np.concatenate([one_hot, teacher_logits.astype(np.float32)], axis=1)


def labels_of(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """The class labels of (N,) labels or (N, 2C) packed targets."""
    targets = np.asarray(targets)
    return targets if targets.ndim == 1 else targets[:, :num_classes].argmax(axis=1)


def with_teacher_logits(packed: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """Packed targets (any leading shape) with their teacher half replaced: a teacher assistant's logits."""
    num_classes = teacher_logits.shape[-1]
    return np.concatenate([packed[..., :num_classes], teacher_logits.astype(np.float32)], axis=-1)


def _unpack(y_true, y_pred):
    num_classes = ops.shape(y_pred)[-1]
    return y_true[:, :num_classes], y_true[:, num_classes:]


def distillation_loss(y_true, y_pred, temperature: float, alpha: float):
    """alpha * CE(labels, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)), per example.

    The T^2 factor keeps the soft-target gradients on the same scale as the hard ones when T changes.
    """
    labels, teacher_logits = _unpack(y_true, y_pred)
    hard = keras.losses.categorical_crossentropy(labels, y_pred, from_logits=True)
    teacher_probs = ops.softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = ops.log_softmax(y_pred / temperature, axis=-1)
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    kl = ops.sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)
    return alpha * hard + (1.0 - alpha) * temperature**2 * kl


@keras.saving.register_keras_serializable(package="tinygray")
class DistillationLoss(keras.losses.Loss):
    def __init__(self, temperature: float = 4.0, alpha: float = 0.1, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        return distillation_loss(y_true, y_pred, self.temperature, self.alpha)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}


def label_accuracy(y_true, y_pred):
    """Top-1 accuracy against the hard labels inside packed targets."""
    labels, _ = _unpack(y_true, y_pred)
    return keras.metrics.categorical_accuracy(labels, y_pred)


class TeacherInTheLoop(keras.Model):
    """The student trained against the teacher's logits for exactly the batch it is shown, computed in the
    training step ("function matching", Beyer et al. 2022): fresh augmentations every epoch and mixup
    need it, since no stored logits exist for those images. Targets are one-hot (or mixed) labels; the
    loss is the same DistillationLoss as with stored logits. Only the student's weights train."""

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float, alpha: float, **kwargs):
        super().__init__(name=f"{student.name}_with_teacher", **kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.alpha = float(temperature), float(alpha)

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        packed = ops.concatenate([ops.cast(y, "float32"), ops.cast(teacher_logits, "float32")], axis=-1)
        return ops.mean(distillation_loss(packed, y_pred, self.temperature, self.alpha))

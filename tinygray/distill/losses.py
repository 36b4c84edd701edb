"""Knowledge distillation from stored teacher logits: Hinton et al. (2015), or decoupled (Zhao et al. 2022).

The teacher runs once (the soft_targets stage); the student trains with plain `fit` on targets that
pack the one-hot labels and the teacher's logits side by side, so every Keras callback still works.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops
from scipy import special


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """(N,) labels and (N, C) logits -> (N, 2C) float32 [one-hot labels | teacher logits]. A label of -1 (an
    unlabelled image) packs as all zeros: its hard-label cross-entropy is 0, so it learns from the teacher alone."""
    num_classes = teacher_logits.shape[1]
    labels = np.asarray(labels)
    one_hot = np.eye(num_classes, dtype=np.float32)[labels] * (labels >= 0)[:, None]
    return np.concatenate([one_hot, teacher_logits.astype(np.float32)], axis=1)


def labels_of(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """The class labels of (N,) labels or (N, 2C) packed targets."""
    targets = np.asarray(targets)
    return targets if targets.ndim == 1 else targets[:, :num_classes].argmax(axis=1)


def with_teacher_logits(packed: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """Packed targets (any leading shape) with their teacher half replaced: a teacher assistant's logits."""
    num_classes = teacher_logits.shape[-1]
    return np.concatenate([packed[..., :num_classes], teacher_logits.astype(np.float32)], axis=-1)


def target_confidence(packed: np.ndarray, temperature: float) -> dict:
    """How peaked the stored soft targets are at the distillation temperature, over every view and labelled image:
    the teacher's mean top probability, and its mean probability of the true class (1 minus it is the weight
    plain KD gives the non-target classes: near 0, the soft targets say little beyond the label)."""
    num_classes = packed.shape[-1] // 2
    labelled = packed[packed[..., :num_classes].sum(axis=-1) > 0]  # unlabelled images have no true class
    labels, logits = labelled[:, :num_classes], labelled[:, num_classes:].astype(np.float64) / temperature
    probs = special.softmax(logits, axis=-1)
    return {"soft_target_top_probability": round(float(probs.max(axis=-1).mean()), 4),
            "soft_target_true_class_probability": round(float((probs * labels).sum(axis=-1).mean()), 4)}


def _unpack(y_true, y_pred):
    num_classes = ops.shape(y_pred)[-1]
    return y_true[:, :num_classes], y_true[:, num_classes:]


def _kl(p, log_p, log_q):
    return ops.sum(p * (log_p - log_q), axis=-1)


def decoupled_terms(labels, teacher_logits, student_logits, temperature: float):
    """Zhao et al. (2022)'s split of KL(teacher || student) at temperature T into (TCKD, NCKD, p_t):
    TCKD is the KL between the binary distributions [target, rest], NCKD the KL among the non-target classes
    alone, p_t the teacher's probability of the target. Plain KD = TCKD + (1 - p_t) * NCKD: a confident
    teacher (p_t near 1, as on images it was fine-tuned on) all but silences what it knows about the other
    classes, which is what decoupled KD restores by weighting NCKD by a constant beta instead."""
    big = 1e4 * labels  # pushes the target out of the non-target softmax
    log_probs = {}
    for name, logits in (("teacher", teacher_logits / temperature), ("student", student_logits / temperature)):
        all_classes = ops.logsumexp(logits, axis=-1)
        log_target = ops.sum(labels * logits, axis=-1) - all_classes
        log_rest = ops.logsumexp(logits - big, axis=-1) - all_classes  # log(1 - p_target), stably
        log_probs[name] = (ops.stack([log_target, log_rest], axis=-1), ops.log_softmax(logits - big, axis=-1))
    (teacher_binary, teacher_rest), (student_binary, student_rest) = log_probs["teacher"], log_probs["student"]
    tckd = _kl(ops.exp(teacher_binary), teacher_binary, student_binary)
    nckd = _kl(ops.exp(teacher_rest) * (1.0 - labels), teacher_rest, student_rest)
    return tckd, nckd, ops.exp(teacher_binary[..., 0])


def distillation_loss(y_true, y_pred, temperature: float, alpha: float, dkd_beta: float | None = None):
    """alpha * CE(labels, s) + (1 - alpha) * T^2 * soft term, per example. The soft term is
    KL(softmax(t/T) || softmax(s/T)) (Hinton), or with dkd_beta TCKD + dkd_beta * NCKD (decoupled KD).

    The T^2 factor keeps the soft-target gradients on the same scale as the hard ones when T changes.
    """
    labels, teacher_logits = _unpack(y_true, y_pred)
    hard = keras.losses.categorical_crossentropy(labels, y_pred, from_logits=True)
    if dkd_beta is None:  # softmax and log_softmax apart, as before dkd_beta: the same floats, the same students
        soft = _kl(ops.softmax(teacher_logits / temperature, axis=-1),
                   ops.log_softmax(teacher_logits / temperature, axis=-1), ops.log_softmax(y_pred / temperature, axis=-1))
    else:
        tckd, nckd, _ = decoupled_terms(labels, teacher_logits, y_pred, temperature)
        soft = tckd + dkd_beta * nckd
    return alpha * hard + (1.0 - alpha) * temperature**2 * soft


@keras.saving.register_keras_serializable(package="tinygray")
class DistillationLoss(keras.losses.Loss):
    def __init__(self, temperature: float = 4.0, alpha: float = 0.1, dkd_beta: float | None = None,
                 name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.dkd_beta = None if dkd_beta is None else float(dkd_beta)

    def call(self, y_true, y_pred):
        return distillation_loss(y_true, y_pred, self.temperature, self.alpha, self.dkd_beta)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha, "dkd_beta": self.dkd_beta}


def label_accuracy(y_true, y_pred):
    """Top-1 accuracy against the hard labels inside packed targets; on an unlabelled image (no label packed),
    agreement with the teacher's top class."""
    labels, teacher_logits = _unpack(y_true, y_pred)
    labelled = ops.sum(labels, axis=-1, keepdims=True) > 0
    reference = ops.where(labelled, labels, ops.one_hot(ops.argmax(teacher_logits, axis=-1), ops.shape(labels)[-1]))
    return keras.metrics.categorical_accuracy(reference, y_pred)


class TeacherInTheLoop(keras.Model):
    """The student trained against the teacher's logits for exactly the batch it is shown, computed in the
    training step ("function matching", Beyer et al. 2022): fresh augmentations every epoch and mixup
    need it, since no stored logits exist for those images. Targets are one-hot (or mixed) labels; the
    loss is the same DistillationLoss as with stored logits. Only the student's weights train."""

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float, alpha: float,
                 dkd_beta: float | None = None, **kwargs):
        super().__init__(name=f"{student.name}_with_teacher", **kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.alpha, self.dkd_beta = float(temperature), float(alpha), dkd_beta

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        packed = ops.concatenate([ops.cast(y, "float32"), ops.cast(teacher_logits, "float32")], axis=-1)
        return ops.mean(distillation_loss(packed, y_pred, self.temperature, self.alpha, self.dkd_beta))

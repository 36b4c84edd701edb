import math

import numpy as np
import pytest

from tinygray.distillation import DistillationLoss, distillation_loss, label_accuracy, pack_targets


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_loss_matches_hand_computed_value():
    student, teacher, label, T, alpha = [2.0, 1.0, 0.0], [1.0, 3.0, 0.5], 1, 2.0, 0.3
    hard = -math.log(softmax(student)[label])
    p = softmax([t / T for t in teacher])
    q = softmax([s / T for s in student])
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = alpha * hard + (1 - alpha) * T**2 * kl

    y_true = pack_targets(np.array([label]), np.array([teacher]))
    got = float(np.asarray(distillation_loss(y_true, np.array([student], dtype=np.float32), T, alpha))[0])
    assert got == pytest.approx(expected, rel=1e-5)


def test_alpha_one_is_plain_cross_entropy_and_loss_object_averages():
    logits = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    y_true = pack_targets(np.array([1, 0]), np.array([[9.0, -9.0], [-9.0, 9.0]]))
    per_example = np.asarray(distillation_loss(y_true, logits, 4.0, 1.0))
    expected = [-math.log(softmax(row)[label]) for row, label in zip(logits.tolist(), [1, 0])]
    np.testing.assert_allclose(per_example, expected, rtol=1e-5)
    assert float(DistillationLoss(4.0, 1.0)(y_true, logits)) == pytest.approx(np.mean(expected), rel=1e-5)


def test_soft_term_vanishes_when_student_copies_teacher():
    logits = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    y_true = pack_targets(np.array([2]), logits)
    assert float(np.asarray(distillation_loss(y_true, logits, 5.0, 0.0))[0]) == pytest.approx(0.0, abs=1e-6)


def test_pack_targets_layout_and_label_accuracy():
    packed = pack_targets(np.array([2, 0]), np.zeros((2, 3)))
    assert packed.shape == (2, 6)
    np.testing.assert_array_equal(packed[:, :3], [[0, 0, 1], [1, 0, 0]])
    predictions = np.array([[0.0, 0.0, 5.0], [0.0, 5.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(label_accuracy(packed, predictions)), [1.0, 0.0])

import math

import numpy as np
import pytest

from tinygray.distill.losses import (DistillationLoss, decoupled_terms, distillation_loss, label_accuracy, pack_targets,
                                  target_confidence)


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


def test_plain_kd_is_tckd_plus_nckd_scaled_by_the_teachers_doubt():
    """Zhao et al. (2022), eq. 3: KL = TCKD + (1 - p_t) NCKD. Checked on random logits, so a wrong term fails."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 1, 3])
    teacher, student = (rng.normal(scale=3.0, size=(4, 4)).astype(np.float32) for _ in range(2))
    one_hot = np.eye(4, dtype=np.float32)[labels]
    T = 2.0
    tckd, nckd, teacher_target = (np.asarray(term) for term in decoupled_terms(one_hot, teacher, student, T))
    y_true = pack_targets(labels, teacher)
    kl = np.asarray(distillation_loss(y_true, student, T, 0.0)) / T**2
    np.testing.assert_allclose(tckd + (1 - teacher_target) * nckd, kl, rtol=1e-4)
    p = np.exp(teacher / T) / np.exp(teacher / T).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(teacher_target, p[np.arange(4), labels], rtol=1e-5)
    assert (nckd > 0).all() and (tckd > 0).all()


def test_decoupled_kd_weights_the_non_target_term_by_beta():
    rng = np.random.default_rng(1)
    labels = np.array([1, 0])
    teacher, student = (rng.normal(size=(2, 3)).astype(np.float32) for _ in range(2))
    tckd, nckd, _ = (np.asarray(term) for term in decoupled_terms(np.eye(3, dtype=np.float32)[labels], teacher, student, 4.0))
    y_true = pack_targets(labels, teacher)
    hard = np.asarray(distillation_loss(y_true, student, 4.0, 1.0))
    got = np.asarray(distillation_loss(y_true, student, 4.0, 0.25, dkd_beta=8.0))
    np.testing.assert_allclose(got, 0.25 * hard + 0.75 * 16.0 * (tckd + 8.0 * nckd), rtol=1e-5)
    loss = DistillationLoss(4.0, 0.25, dkd_beta=8.0)
    assert DistillationLoss.from_config(loss.get_config()).dkd_beta == 8.0
    assert float(loss(y_true, student)) == pytest.approx(float(np.mean(got)), rel=1e-5)


def test_decoupled_terms_stay_finite_for_a_teacher_sure_of_the_target():
    labels = np.eye(3, dtype=np.float32)[[0]]
    teacher = np.array([[40.0, -40.0, -40.0]], dtype=np.float32)  # p_t = 1 - 1e-35: the rest underflows
    terms = decoupled_terms(labels, teacher, np.array([[1.0, 0.5, -0.5]], dtype=np.float32), 1.0)
    assert all(np.isfinite(np.asarray(term)).all() for term in terms)


def test_target_confidence_is_the_teachers_mean_top_and_true_class_probability_at_t():
    logits = np.array([[[2.0, 0.0], [0.0, 0.0]], [[4.0, 0.0], [0.0, 2.0]]])  # (views, images, classes)
    packed = np.stack([pack_targets(np.array([0, 0]), view) for view in logits])
    got = target_confidence(packed, temperature=2.0)
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731  two classes: softmax is a sigmoid of the gap / T
    top = [sigmoid(1.0), 0.5, sigmoid(2.0), sigmoid(1.0)]
    true = [sigmoid(1.0), 0.5, sigmoid(2.0), 1 - sigmoid(1.0)]
    assert got["soft_target_top_probability"] == pytest.approx(np.mean(top), abs=1e-4)
    assert got["soft_target_true_class_probability"] == pytest.approx(np.mean(true), abs=1e-4)

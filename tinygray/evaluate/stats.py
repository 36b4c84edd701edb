"""Is a difference between two variants a gain? Paired tests on the same test images.

Two accuracies measured on one test split are not independent samples: most images are right (or
wrong) for both models. McNemar's test looks only at the images the two models disagree on, which is
far more sensitive than comparing two confidence intervals.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest, ttest_rel


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of logits (or probabilities) over the last axis against integer labels."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for an accuracy: a 500-image test split cannot tell 98.8% from 98.0%, and the report
    should say so. Wilson's interval stays inside [0, 1] near 100%, unlike the normal one."""
    if total == 0:
        return 0.0, 1.0
    interval = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test on per-image correctness of two models over the same images.

    b01 counts images model A gets wrong and model B right, b10 the reverse. If neither model is
    better, each disagreement is a fair coin flip, so p_value is the exact two-sided binomial
    probability of a split at least this uneven (1.0 when they never disagree).
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar: need per-image results on the same images, got shapes {a.shape} and {b.shape}")
    b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    p_value = binomtest(b01, b01 + b10, 0.5).pvalue if b01 + b10 else 1.0
    return {"b01": b01, "b10": b10, "p_value": float(p_value)}


def paired_seeds(a: list[float], b: list[float]) -> dict:
    """Paired t-test over seeds: a[i] and b[i] share seed i (the same initial weights and batch order), so
    their difference removes what the seed alone does. Needs two pairs or more; p is None below that."""
    if len(a) != len(b):
        raise ValueError(f"paired_seeds: need one value per seed on both sides, got {len(a)} and {len(b)}")
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    p_value = None
    if len(differences) >= 2 and np.ptp(differences) == 0:  # no spread: t is 0/0 or infinite
        p_value = 1.0 if differences[0] == 0 else 0.0
    elif len(differences) >= 2:
        p_value = float(ttest_rel(a, b).pvalue)
    return {"num_seeds": len(differences), "mean_difference": round(float(differences.mean()), 4),
            "p_value": p_value}


def above_chance(accuracy: float, labels: np.ndarray) -> dict:
    """Is an accuracy on these labels clearly above always answering the most common class? One-sided exact
    binomial test against the majority-class rate, so the margin follows the split's size: on 80 balanced
    images 0.625 is not enough (p = 0.015 at alpha 0.01), on 10,000 a point above chance is."""
    labels = np.asarray(labels)
    total = len(labels)
    majority = float(np.bincount(labels).max() / total) if total else 1.0
    correct = int(round(accuracy * total))
    p_value = float(binomtest(correct, total, majority, alternative="greater").pvalue) if total else 1.0
    return {"majority_rate": round(majority, 4), "p_value": p_value, "above": significant(p_value, CHANCE_ALPHA)}


# A model at chance is a broken run, not a result: the bar is strict, so a genuine failure is never excused.
CHANCE_ALPHA = 0.01


def significant(p: float | None, alpha: float = 0.05) -> bool:
    return p is not None and p < alpha


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over repeated runs, e.g. seeds; 0 for one run."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std: no values")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0

"""Is a difference between two variants a gain? Paired tests on the same test images.

Two accuracies measured on one test split are not independent samples: most images are right (or
wrong) for both models. McNemar's test looks only at the images the two models disagree on, which is
far more sensitive than comparing two confidence intervals.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest  # scipy is always present: scikit-learn depends on it


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


def significant(p: float, alpha: float = 0.05) -> bool:
    return p < alpha


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over repeated runs, e.g. seeds; 0 for one run."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std: no values")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0

import math

import numpy as np
import pytest

from tinygray.evaluate.stats import mcnemar, mean_std, paired_seeds, significant, wilson_interval


def paired(b01, b10, both_right=0, both_wrong=0):
    """Per-image correctness of models A and B with the given counts in each cell."""
    a = [False] * b01 + [True] * b10 + [True] * both_right + [False] * both_wrong
    b = [True] * b01 + [False] * b10 + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(b)


def test_mcnemar_matches_the_hand_computed_binomial_tail():
    result = mcnemar(*paired(10, 2))
    assert (result["b01"], result["b10"]) == (10, 2)
    # 2 * P(X <= 2 | n=12, p=1/2) = 2 * (1 + 12 + 66) / 4096 = 158 / 4096
    assert result["p_value"] == pytest.approx(158 / 4096) == pytest.approx(0.0386, abs=1e-4)
    assert result["p_value"] == pytest.approx(2 * sum(math.comb(12, k) for k in range(3)) / 2**12)


def test_mcnemar_ignores_agreements_and_is_symmetric():
    assert mcnemar(*paired(10, 2, both_right=900, both_wrong=30))["p_value"] == pytest.approx(158 / 4096)
    swapped = mcnemar(*paired(2, 10))
    assert (swapped["b01"], swapped["b10"]) == (2, 10)
    assert swapped["p_value"] == pytest.approx(158 / 4096)


def test_mcnemar_without_a_real_difference():
    correct = np.array([True, False, True, True])
    assert mcnemar(correct, correct) == {"b01": 0, "b10": 0, "p_value": 1.0}
    assert mcnemar(*paired(5, 5))["p_value"] == pytest.approx(1.0)
    # a 4-0 split looks one-sided but is still chance: 2 / 2**4 = 0.125
    assert mcnemar(*paired(4, 0))["p_value"] == pytest.approx(0.125)


def test_mcnemar_rejects_unpaired_results():
    with pytest.raises(ValueError, match="same images"):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_significant_is_strict():
    assert significant(158 / 4096)
    assert not significant(0.05)
    assert significant(0.009, alpha=0.01) and not significant(0.02, alpha=0.01)


def test_mean_std_uses_the_sample_standard_deviation():
    mean, std = mean_std([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == pytest.approx(5.0)
    assert std == pytest.approx(math.sqrt(32 / 7))  # squared deviations sum to 32, n - 1 = 7
    assert mean_std([0.97]) == (0.97, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_wilson_interval_known_values():
    low, high = wilson_interval(490, 500)
    assert (low, high) == pytest.approx((0.9636, 0.9891), abs=1e-4)
    assert wilson_interval(500, 500)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_paired_seeds_tests_the_per_seed_differences():
    result = paired_seeds([0.87, 0.88, 0.86], [0.85, 0.86, 0.86])
    assert result["num_seeds"] == 3 and result["mean_difference"] == pytest.approx(0.0133, abs=1e-4)
    # t = mean(d) / (sd(d) / sqrt(3)) with d = (0.02, 0.02, 0): t = 2, two-sided with 2 degrees of freedom
    assert result["p_value"] == pytest.approx(0.1835, abs=1e-3)
    assert paired_seeds([0.9], [0.8])["p_value"] is None  # one seed: nothing to test against
    assert paired_seeds([0.9, 0.8], [0.9, 0.8])["p_value"] == 1.0
    assert not significant(None)
    with pytest.raises(ValueError, match="one value per seed"):
        paired_seeds([0.9, 0.8], [0.9])


def test_above_chance_margin_follows_the_split_size():
    from tinygray.evaluate.stats import above_chance

    balanced_80 = np.repeat([0, 1], 40)
    assert not above_chance(0.5, balanced_80)["above"]  # one class for every image
    assert not above_chance(0.625, balanced_80)["above"]  # 50 of 80: p = 0.015, not below 0.01
    assert above_chance(0.7, balanced_80)["above"]
    skewed = np.array([0] * 90 + [1] * 10)
    verdict = above_chance(0.9, skewed)  # always answering class 0
    assert verdict["majority_rate"] == 0.9 and not verdict["above"]
    assert above_chance(0.11, np.repeat(np.arange(10), 1000))["above"]  # 10,000 images: a point above is real

"""The validation threshold (`mclcr_keras.metrics.threshold`) against a brute-force reference."""

import numpy as np
import pytest

from mclcr_keras.metrics import THRESHOLD_CRITERIA, choose_threshold, operating_point


def brute_force_cost(y, p, t, criterion):
    """FPR/FNR of `p > t` computed by counting, the criterion's cost (lower is better)."""
    fake = p > t
    fpr = np.sum(fake & (y == 0)) / np.sum(y == 0)
    fnr = np.sum(~fake & (y == 1)) / np.sum(y == 1)
    return abs(fpr - fnr) if criterion == "eer" else (fpr + fnr) / 2


@pytest.mark.parametrize("criterion", THRESHOLD_CRITERIA)
@pytest.mark.parametrize("seed", range(5))
def test_threshold_is_optimal_over_a_fine_grid(criterion, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    y[:2] = [0, 1]
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(3)  # ties on purpose
    t = choose_threshold(y, p, criterion)
    grid = np.linspace(0, 1, 4001)
    best = min(brute_force_cost(y, p, g, criterion) for g in grid)
    assert brute_force_cost(y, p, t, criterion) <= best + 1e-12
    assert 0.0 <= t <= 1.0


def test_separable_scores_give_the_midpoint_of_the_gap():
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx(0.45)
    point = operating_point([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], 0.45)
    assert point == {"fpr": 0.0, "fnr": 0.0, "balanced_acc": 1.0}


def test_threshold_needs_both_classes_and_a_known_criterion():
    with pytest.raises(ValueError, match="needs real and fake scores; got 2 real and 0 fake"):
        choose_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="must be one of"):
        choose_threshold([0, 1], [0.1, 0.2], criterion="youden")


def test_constant_scores_keep_a_valid_threshold():
    t = choose_threshold([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    assert t in (0.0, 1.0)  # both rules equally bad: everything fake or everything real

"""mclcr_keras.metrics.calibration (Brier score, reliability bins, ECE) against scikit-learn,
numpy.histogram and a hand-computed example; the reliability diagram (mclcr_keras.viz.reliability)
as a real PNG."""

import math

import cv2
import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from mclcr_keras import metrics as M
from mclcr_keras import viz
from mclcr_keras.viz.reliability import reliability_plot


def histogram_ece(y, p, bins=15):
    """ECE from numpy.histogram: bins [e_k, e_k+1) over [0, 1], the last one closed."""
    count, _ = np.histogram(p, bins=bins, range=(0.0, 1.0))
    fakes, _ = np.histogram(p, bins=bins, range=(0.0, 1.0), weights=np.asarray(y, float))
    mass, _ = np.histogram(p, bins=bins, range=(0.0, 1.0), weights=p)
    # |fakes/n_b - mass/n_b| * n_b / n = |fakes - mass| / n
    return float(np.sum(np.abs(fakes - mass)) / len(p))


def random_case(seed, n=400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(rng.beta(2 + 3 * y, 5 - 3 * y), 0.0, 1.0)
    return y, p


@pytest.mark.parametrize("seed", range(6))
def test_brier_matches_scikit_learn(seed):
    y, p = random_case(seed)
    assert M.brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert M.calibration_metrics(y, p)["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-15)


def test_ece_hand_computed():
    # bin 0 [0, 1/15):     p 0.00 (real), 0.02 (fake): mean p 0.01, fakes 1/2, gap 0.49, 2 frames
    # bin 7 [7/15, 8/15):  p 0.50 (fake), 0.50 (real), 0.52 (fake): mean 0.50667, fakes 2/3,
    #                      gap 0.16, 3 frames
    # bin 14 [14/15, 1]:   p 0.95 (real), 1.00 (fake; 1.0 is in the last bin): mean 0.975,
    #                      fakes 1/2, gap 0.475, 2 frames
    y = [0, 1, 1, 0, 1, 0, 1]
    p = [0.0, 0.02, 0.5, 0.5, 0.52, 0.95, 1.0]
    expected = (2 * 0.49 + 3 * 0.16 + 2 * 0.475) / 7
    assert M.expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    bins = M.reliability_bins(y, p)
    assert len(bins["edges"]) == 16 and bins["edges"][0] == 0.0 and bins["edges"][-1] == 1.0
    assert bins["count"] == [2, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 2]
    assert bins["fake_fraction"][7] == pytest.approx(2 / 3)
    assert bins["mean_probability"][14] == pytest.approx(0.975)
    assert math.isnan(bins["mean_probability"][1]) and math.isnan(bins["fake_fraction"][1])
    assert M.ece_from_bins(bins) == pytest.approx(expected, abs=1e-12)


def test_probability_one_goes_to_the_last_bin_and_edges_start_a_bin():
    edges = np.linspace(0.0, 1.0, 16)
    bins = M.reliability_bins([1, 0, 0], [1.0, edges[5], edges[14]])
    assert bins["count"][14] == 2 and bins["count"][5] == 1 and sum(bins["count"]) == 3


@pytest.mark.parametrize("seed", range(6))
def test_ece_and_bins_match_numpy_histogram_and_scikit_learn(seed):
    y, p = random_case(seed)
    assert M.expected_calibration_error(y, p) == pytest.approx(histogram_ece(y, p), abs=1e-12)
    bins = M.reliability_bins(y, p)
    count, _ = np.histogram(p, bins=15, range=(0.0, 1.0))
    assert bins["count"] == count.tolist()
    # scikit-learn's uniform calibration curve: the non-empty bins' fake fraction and mean p.
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    full = count > 0
    np.testing.assert_allclose(np.asarray(bins["fake_fraction"])[full], prob_true, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bins["mean_probability"])[full], prob_pred, atol=1e-12)


def test_ece_limits():
    # Calibrated by construction: labels drawn with the stated probability -> ECE near 0.
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert M.expected_calibration_error(y, p) < 0.01
    # Confidently wrong: every real frame at 1.0, every fake at 0.0 -> ECE 1, Brier 1.
    assert M.expected_calibration_error([0, 1], [1.0, 0.0]) == 1.0
    assert M.brier_score([0, 1], [1.0, 0.0]) == 1.0
    # One class is fine (unlike AUC): all real at 0.2 -> ECE 0.2.
    assert M.expected_calibration_error([0, 0, 0], [0.2, 0.2, 0.2]) == pytest.approx(0.2)
    # Other bin counts are supported.
    assert M.expected_calibration_error([0, 1], [0.3, 0.6], bins=1) == pytest.approx(0.05)


@pytest.mark.parametrize("bins", [0, -1, 1.5, True])
def test_bad_bin_counts_raise(bins):
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        M.reliability_bins([0, 1], [0.1, 0.9], bins=bins)


def test_bad_inputs_raise_like_the_detection_metrics():
    with pytest.raises(ValueError, match=r"\[0, 1\], got range"):
        M.brier_score([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError, match="labels must be 0"):
        M.expected_calibration_error([0, 3], [0.1, 0.2])


# ---------------------------------------------------------------- the reliability diagram


def test_reliability_png_shows_two_curves_and_their_counts(tmp_path):
    curves = {}
    for seed, name in enumerate(["good", "overconfident"]):
        y, p = random_case(seed, n=2000)
        if name == "overconfident":
            p = np.clip((p - 0.5) * 3 + 0.5, 0, 1)
        curves[name] = {**M.reliability_bins(y, p), "ece": M.expected_calibration_error(y, p)}
    path = reliability_plot(curves, tmp_path / "sub" / "reliability.png", size_px=450)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (600, 450, 3)  # height 4/3 of the width
    non_white = np.mean(img.min(axis=2) < 200)
    assert 0.01 < non_white < 0.5
    height = img.shape[0]
    for bgr in ([180, 119, 31], [14, 127, 255]):  # matplotlib's C0 and C1
        colour = np.all(np.abs(img.astype(int) - bgr) < 30, axis=2)
        # each curve in the reliability panel (top 3/4) and its counts in the bottom panel
        assert colour[: int(height * 0.7)].sum() > 100
        assert colour[int(height * 0.75):].sum() > 50


def test_reliability_plot_is_exported_and_checks_its_input(tmp_path):
    assert viz.reliability_plot is reliability_plot
    with pytest.raises(ValueError, match="at least one curve"):
        reliability_plot({}, tmp_path / "r.png")
    with pytest.raises(ValueError, match="'x' is not a reliability_bins"):
        reliability_plot({"x": {"count": [1]}}, tmp_path / "r.png")
    bins = M.reliability_bins([0, 1], [0.1, 0.9])
    bins["count"] = bins["count"][:-1]
    with pytest.raises(ValueError, match="16 edges need 15 bins"):
        reliability_plot({"x": bins}, tmp_path / "r.png")

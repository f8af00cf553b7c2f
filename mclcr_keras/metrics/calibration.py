"""Calibration of the fake probability at frame level: Brier score, reliability bins, ECE.

A detector whose ``predict`` prints "fake, 0.83" invites reading 0.83 as a probability; these
numbers say whether it is one. Definitions (``docs/metrics.md``, "Calibration"):

- **Brier score**: ``mean((p - y)^2)`` over frames (0 is perfect; always calling 0.5 gives 0.25).
- **Reliability bins**: `ECE_BINS` = 15 equal-width bins of the fake probability over [0, 1],
  edges ``numpy.linspace(0, 1, 16)``; bin ``b`` holds ``edges[b] <= p < edges[b + 1]``, and
  ``p == 1.0`` goes to the last bin.
- **ECE** (expected calibration error): ``sum_b (n_b / n) |mean label_b - mean p_b|`` over the
  non-empty bins, where ``mean label_b`` is the fraction of fake frames in the bin.

Both are defined with a single class present (unlike AUC).

Example:

>>> round(brier_score([0, 1], [0.2, 0.6]), 6)
0.1
>>> expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.7])  # (2 * 0.1 + 0.1 + 0.3) / 4
0.15
"""

from __future__ import annotations

import numpy as np

from mclcr_keras.metrics.detection import _check_inputs

# Equal-width bins of the fake probability for the ECE and the reliability diagram.
ECE_BINS = 15

__all__ = ["ECE_BINS", "brier_score", "calibration_metrics", "ece_from_bins",
           "expected_calibration_error", "reliability_bins"]


def brier_score(labels, probabilities) -> float:
    """Mean squared difference between the fake probability and the label (0 real, 1 fake).

    Example:

    >>> brier_score([0, 1, 1], [0.0, 1.0, 0.5])
    0.08333333333333333
    """
    y, p = _check_inputs(labels, probabilities)
    return float(np.mean((p - y) ** 2))


def _bin_index(p: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="right": a probability equal to an inner edge starts the next bin; p == 1 -> last.
    index = np.minimum(np.searchsorted(edges, p, side="right") - 1, bins - 1)
    return edges, index


def reliability_bins(labels, probabilities, bins: int = ECE_BINS) -> dict:
    """Frames per probability bin, with their mean probability and fraction of fakes.

    Args:
        labels: 0 real, 1 fake per frame.
        probabilities: fake probability per frame, in [0, 1].
        bins: number of equal-width bins over [0, 1].

    Returns:
        ``{"edges": [bins + 1 floats], "count": [bins ints], "mean_probability": [...],
        "fake_fraction": [...]}``; the two means are NaN for an empty bin.

    Example:

    >>> r = reliability_bins([0, 1, 1], [0.1, 0.95, 1.0], bins=2)
    >>> r["count"], r["fake_fraction"], r["mean_probability"]
    ([1, 2], [0.0, 1.0], [0.1, 0.975])
    """
    y, p = _check_inputs(labels, probabilities)
    edges, index = _bin_index(p, bins)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / count
        fake = np.bincount(index, weights=y, minlength=bins) / count
    return {
        "edges": edges.tolist(),
        "count": count.astype(int).tolist(),
        "mean_probability": [float(v) for v in mean_p],
        "fake_fraction": [float(v) for v in fake],
    }


def ece_from_bins(reliability: dict) -> float:
    """The ECE of a `reliability_bins` dict: share-weighted ``|fake fraction - mean p|``."""
    count = np.asarray(reliability["count"], dtype=np.float64)
    gap = np.abs(np.asarray(reliability["fake_fraction"], dtype=np.float64)
                 - np.asarray(reliability["mean_probability"], dtype=np.float64))
    full = count > 0
    return float(np.sum(count[full] * gap[full]) / np.sum(count))


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width probability bins (empty bins contribute nothing).

    Example:

    >>> expected_calibration_error([0, 1], [0.0, 1.0])
    0.0
    """
    return ece_from_bins(reliability_bins(labels, probabilities, bins))


def calibration_metrics(labels, probabilities, bins: int = ECE_BINS) -> dict:
    """``{"brier", "ece"}`` of frame probabilities (the keys `evaluate` adds to ``frame``).

    Example:

    >>> calibration_metrics([0, 1], [0.5, 0.5])
    {'brier': 0.25, 'ece': 0.0}
    """
    return {"brier": brier_score(labels, probabilities),
            "ece": expected_calibration_error(labels, probabilities, bins)}

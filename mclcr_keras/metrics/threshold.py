"""The decision threshold chosen on validation scores (then carried to test, predict and export).

A frame is called fake when ``probability > threshold`` (`mclcr_keras.metrics`). The threshold is
picked among *candidates*: 0, 1, and the midpoints between consecutive distinct validation scores
(every distinct decision rule on the validation set is reached by exactly one candidate, and a
midpoint keeps a margin on both sides). Criteria:

- ``eer``: the candidate where the false-positive rate and the false-negative rate are closest
  (the equal-error-rate operating point);
- ``balanced_acc``: the candidate of highest balanced accuracy, ``(TPR + TNR) / 2``.

Ties (equal criterion value) go to the candidate closest to 0.5, then to the lower one.

Example:

>>> choose_threshold([0, 0, 1, 1], [0.1, 0.25, 0.75, 0.8])
0.5
>>> choose_threshold([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.8], criterion="balanced_acc")
0.35
"""

from __future__ import annotations

import numpy as np

from mclcr_keras.metrics.detection import _check_inputs

# --threshold-criterion values; the first is the default.
THRESHOLD_CRITERIA = ("eer", "balanced_acc")

__all__ = ["THRESHOLD_CRITERIA", "choose_threshold", "threshold_candidates", "operating_point"]


def threshold_candidates(probabilities) -> np.ndarray:
    """0, the midpoints between consecutive distinct scores, and 1 (sorted, unique).

    Example:

    >>> threshold_candidates([0.2, 0.6, 0.2]).tolist()
    [0.0, 0.4, 1.0]
    """
    scores = np.unique(np.asarray(probabilities, dtype=np.float64))
    midpoints = (scores[:-1] + scores[1:]) / 2.0
    return np.unique(np.concatenate([[0.0], midpoints, [1.0]]))


def operating_point(labels, probabilities, threshold: float) -> dict:
    """False-positive and false-negative rates of ``probability > threshold``.

    Returns:
        ``{"fpr", "fnr", "balanced_acc"}`` (``fpr`` over real, ``fnr`` over fake samples).

    Example:

    >>> operating_point([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.8], 0.5)
    {'fpr': 0.5, 'fnr': 0.0, 'balanced_acc': 0.75}
    """
    y, p = _check_inputs(labels, probabilities)
    fake = p > threshold
    fpr = float(np.mean(fake[y == 0])) if (y == 0).any() else float("nan")
    fnr = float(np.mean(~fake[y == 1])) if (y == 1).any() else float("nan")
    return {"fpr": fpr, "fnr": fnr, "balanced_acc": 1.0 - (fpr + fnr) / 2.0}


def choose_threshold(labels, probabilities, criterion: str = THRESHOLD_CRITERIA[0]) -> float:
    """The threshold that meets ``criterion`` best on these (validation) scores.

    Args:
        labels: 0 real, 1 fake, shape (n,); both classes must be present.
        probabilities: fake probabilities in [0, 1], shape (n,).
        criterion: ``"eer"`` or ``"balanced_acc"`` (`THRESHOLD_CRITERIA`).

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: an unknown criterion, one class only, or bad inputs.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"threshold criterion must be one of {THRESHOLD_CRITERIA}, "
                         f"got {criterion!r}")
    y, p = _check_inputs(labels, probabilities)
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    if n_real == 0 or n_fake == 0:
        raise ValueError(f"choosing a threshold needs real and fake scores; got {n_real} real "
                         f"and {n_fake} fake")
    candidates = threshold_candidates(p)
    # Counts of p > t for every candidate t at once: sorted scores and searchsorted.
    real_sorted, fake_sorted = np.sort(p[y == 0]), np.sort(p[y == 1])
    fpr = (n_real - np.searchsorted(real_sorted, candidates, side="right")) / n_real
    fnr = np.searchsorted(fake_sorted, candidates, side="right") / n_fake
    if criterion == "eer":
        cost = np.abs(fpr - fnr)
    else:
        cost = (fpr + fnr) / 2.0
    best = np.flatnonzero(np.isclose(cost, cost.min(), rtol=0.0, atol=1e-12))
    pick = best[np.argmin(np.abs(candidates[best] - 0.5))]  # lowest index among equal distances
    return float(candidates[pick])

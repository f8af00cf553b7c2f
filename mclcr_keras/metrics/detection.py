"""Detection metrics of the face-forgery field: frame and video ACC, AUC, EER, AP, per method.

Conventions in `mclcr_keras.metrics` (and ``docs/metrics.md``). Ranking metrics (AUC, EER, AP)
are undefined when only one class is present: they are NaN and a warning is logged, so that an
evaluation on an unbalanced subset never crashes half-way.

Example:

>>> m = frame_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> round(m["auc"], 2), m["acc"]
(0.75, 0.75)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

logger = logging.getLogger(__name__)


__all__ = [
    "equal_error_rate",
    "frame_metrics",
    "per_method_auc",
    "video_metrics",
    "video_scores",
]


def _check_inputs(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1:
        raise ValueError(
            f"labels and probabilities must be 1-D, got shapes {y.shape} and {p.shape}"
        )
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape[0]}) and probabilities ({p.shape[0]}) differ in length")
    if y.size == 0:
        raise ValueError("no predictions to evaluate (empty labels)")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {y[bad][0].tolist()!r}")
    if not np.isfinite(p).all():
        raise ValueError(f"probabilities must be finite, got {p[~np.isfinite(p)][0]}")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"probabilities must lie in [0, 1], got range [{p.min():.6g}, {p.max():.6g}]"
        )
    return y.astype(np.int64), p


def _both_classes(y: np.ndarray, what: str) -> bool:
    if np.unique(y).size < 2:
        logger.warning(
            "%s: only label %d present (%d samples); AUC, EER and AP are undefined (NaN)",
            what,
            int(y[0]),
            y.size,
        )
        return False
    return True


def equal_error_rate(labels, probabilities) -> float:
    """Equal error rate: the rate at which FPR equals FNR (= 1 - TPR) on the ROC curve.

    The ROC curve is taken as the piecewise-linear curve through scikit-learn's ``roc_curve``
    points; ``FPR - FNR`` is non-decreasing along it, from <= 0 at (0, 0) to 1 at (1, 1), so it
    crosses zero once and the EER is the FPR at that crossing, linearly interpolated inside the
    segment that brackets it. Undefined (NaN) for a single class.

    Args:
        labels: 0 real, 1 fake, shape (n,).
        probabilities: fake probabilities in [0, 1], shape (n,).

    Returns:
        The EER in [0, 1], or NaN.

    Example:

    >>> equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    0.5
    """
    y, p = _check_inputs(labels, probabilities)
    if not _both_classes(y, "EER"):
        return math.nan
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return _eer_from_roc(fpr, tpr)


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    diff = fpr - (1.0 - tpr)
    j = int(np.argmax(diff >= 0.0))  # first point at or past the crossing; diff[-1] == 1
    if diff[j] == 0.0 or j == 0:
        return float(fpr[j])
    i = j - 1
    t = -diff[i] / (diff[j] - diff[i])
    return float(fpr[i] + t * (fpr[j] - fpr[i]))


def frame_metrics(labels, probabilities, threshold: float = 0.5) -> dict:
    """Frame-level ACC, AUC, EER and AP.

    Args:
        labels: 0 real, 1 fake, shape (n,).
        probabilities: fake probabilities in [0, 1], shape (n,).
        threshold: a sample is predicted fake when ``probability > threshold``.

    Returns:
        ``{"acc", "auc", "eer", "ap", "n", "n_real", "n_fake"}``; AUC, EER and AP are NaN (with a
        logged warning) when only one class is present.

    Example:

    >>> frame_metrics([0, 1], [0.2, 0.9])["auc"]
    1.0
    """
    y, p = _check_inputs(labels, probabilities)
    acc = float(np.mean((p > threshold).astype(np.int64) == y))
    n_fake = int(y.sum())
    out = {
        "acc": acc,
        "auc": math.nan,
        "eer": math.nan,
        "ap": math.nan,
        "n": int(y.size),
        "n_real": int(y.size - n_fake),
        "n_fake": n_fake,
    }
    if _both_classes(y, "metrics"):
        out["auc"] = float(roc_auc_score(y, p))
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        out["eer"] = _eer_from_roc(fpr, tpr)
        out["ap"] = float(average_precision_score(y, p))
    return out


def _normalize_keys(video_keys) -> list[Hashable]:
    if isinstance(video_keys, pd.DataFrame):
        return list(video_keys.itertuples(index=False, name=None))
    keys = []
    for key in video_keys:
        if isinstance(key, np.ndarray):
            key = tuple(key.tolist())
        elif isinstance(key, list):
            key = tuple(key)
        keys.append(key)
    return keys


def _video_codes(video_keys, n_frames: int) -> tuple[dict[Hashable, int], np.ndarray]:
    """``({key: code}, code per frame)``, codes numbered in order of first appearance."""
    keys = _normalize_keys(video_keys)
    if len(keys) != n_frames:
        raise ValueError(f"got {len(keys)} video keys for {n_frames} frames")
    index: dict[Hashable, int] = {}
    codes = np.empty(n_frames, dtype=np.int64)
    for i, key in enumerate(keys):
        codes[i] = index.setdefault(key, len(index))
    return index, codes


def video_scores(
    video_keys: Sequence[Hashable], labels, probabilities
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Aggregates frames to videos: the mean frame probability per video key.

    Args:
        video_keys: one hashable key per frame, normally the tuple ``(dataset, method, video_id)``
            (a video id alone is not unique: FF++'s fake ``000_003`` exists once per method).
            A list of tuples, an (n, k) array or a DataFrame of key columns.
        labels: 0 real, 1 fake per frame.
        probabilities: fake probability per frame.

    Returns:
        ``(keys, video_labels, video_probs)`` in order of first appearance.

    Raises:
        ValueError: if the frames of one video carry different labels, or lengths differ.

    Example:

    >>> keys, y, p = video_scores(["a", "a", "b"], [0, 0, 1], [0.2, 0.4, 0.9])
    >>> keys, y.tolist(), p.round(2).tolist()
    (['a', 'b'], [0, 1], [0.3, 0.9])
    """
    y, p = _check_inputs(labels, probabilities)
    index, codes = _video_codes(video_keys, y.size)
    n_videos = len(index)
    counts = np.bincount(codes, minlength=n_videos)
    video_probs = np.bincount(codes, weights=p, minlength=n_videos) / counts
    fake_counts = np.bincount(codes, weights=y, minlength=n_videos)
    mixed = (fake_counts != 0) & (fake_counts != counts)
    if mixed.any():
        unique_keys = list(index)
        bad = unique_keys[int(np.flatnonzero(mixed)[0])]
        raise ValueError(
            f"video {bad!r} has frames labelled both real and fake "
            f"({int(mixed.sum())} such video(s)); video keys must identify one video"
        )
    return list(index), (fake_counts > 0).astype(np.int64), video_probs


def video_metrics(video_keys, labels, probabilities, threshold: float = 0.5) -> dict:
    """Video-level AUC, ACC (and EER, AP) from the mean frame probability per video.

    Args:
        video_keys: one key per frame, see `video_scores`.
        labels: 0 real, 1 fake per frame.
        probabilities: fake probability per frame.
        threshold: a video is predicted fake when its mean probability ``> threshold``.

    Returns:
        ``{"auc", "acc", "eer", "ap", "n_videos", "n_real", "n_fake"}`` (counts of videos).

    Example:

    >>> video_metrics(["a", "a", "b"], [0, 0, 1], [0.2, 0.4, 0.9])["auc"]
    1.0
    """
    _, video_labels, video_probs = video_scores(video_keys, labels, probabilities)
    m = frame_metrics(video_labels, video_probs, threshold)
    return {
        "auc": m["auc"],
        "acc": m["acc"],
        "eer": m["eer"],
        "ap": m["ap"],
        "n_videos": m["n"],
        "n_real": m["n_real"],
        "n_fake": m["n_fake"],
    }


def per_method_auc(methods, labels, probabilities, video_keys=None) -> dict[str, dict]:
    """AUC of each fake method against all real samples (the FF++ per-method protocol).

    Real samples are those with label 0, whatever their method string; each method that has at
    least one fake (label 1) frame is scored on its fake frames together with every real frame.

    Args:
        methods: method name per frame, e.g. ``"Deepfakes"``.
        labels: 0 real, 1 fake per frame.
        probabilities: fake probability per frame.
        video_keys: optional video key per frame (see `video_scores`); adds video-level AUC.

    Returns:
        ``{method: {"frame_auc", "n_frames", "video_auc", "n_videos"}}`` sorted by method, where
        ``n_frames``/``n_videos`` count that method's fakes (``video_auc``/``n_videos`` are present
        only with ``video_keys``). AUCs are NaN when there are no real samples.

    Example:

    >>> r = per_method_auc(["r", "A", "B"], [0, 1, 1], [0.5, 0.9, 0.1])
    >>> r["A"]["frame_auc"], r["B"]["frame_auc"]
    (1.0, 0.0)
    """
    y, p = _check_inputs(labels, probabilities)
    methods = np.asarray(methods).astype(str)
    if methods.shape != y.shape:
        raise ValueError(f"got {methods.size} methods for {y.size} frames")
    keys = None
    if video_keys is not None:
        keys = _normalize_keys(video_keys)
        if len(keys) != y.size:
            raise ValueError(f"got {len(keys)} video keys for {y.size} frames")
    real = y == 0
    out: dict[str, dict] = {}
    for method in sorted(np.unique(methods[y == 1])):
        sel = real | ((y == 1) & (methods == method))
        fakes = (y == 1) & (methods == method)
        entry = {
            "frame_auc": frame_metrics(y[sel], p[sel])["auc"],
            "n_frames": int(fakes.sum()),
        }
        if keys is not None:
            idx = np.flatnonzero(sel)
            vm = video_metrics([keys[i] for i in idx], y[sel], p[sel])
            entry["video_auc"] = vm["auc"]
            entry["n_videos"] = vm["n_fake"]
        out[str(method)] = entry
    return out

"""Bootstrap confidence intervals of frame and video AUC that resample videos, not frames.

The frames of one video are not independent (same face, same background, same manipulation), so
the unit of resampling is the video, identified by ``(dataset, method, video_id)``: a replicate
draws videos with replacement and keeps **all frames** of each drawn video (a video drawn twice
counts twice). The resample is **stratified**: the real videos and the fake videos are drawn
separately, ``n_real`` from the real and ``n_fake`` from the fake, so that every replicate has
both classes and the same class balance as the test set (an unstratified replicate can lack a
class, where AUC is undefined). The same replicates give the frame AUC (on the drawn videos'
frames) and the video AUC (on the drawn videos' mean probabilities). The interval is the
**percentile** interval: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
the replicate AUCs (``numpy.quantile``, linear interpolation). See ``docs/metrics.md``.

Speed: a replicate is a row of per-video draw counts, and each frame weighs its video's count.
With many frames per video, the frame pairs won by each fake video against each real video are
counted once (a fake x real table) and a replicate's AUC is a matrix product of its counts with
that table; with many videos, the weighted ranks are computed for a block of replicates at once
from the frames sorted by score once. Weights are integers, so the sums are exact: a replicate's
AUC equals ``sklearn.metrics.roc_auc_score`` on the explicitly resampled frames.

Example:

>>> keys = ["r1", "r1", "r2", "r2", "f1", "f1", "f2", "f2"]
>>> labels = [0, 0, 0, 0, 1, 1, 1, 1]
>>> probs = [0.1, 0.3, 0.4, 0.2, 0.6, 0.35, 0.9, 0.8]
>>> ci = auc_intervals(keys, labels, probs, resamples=200, seed=0)
>>> ci["frame"][0] <= 0.9375 <= ci["frame"][1], ci["video"]
(True, [1.0, 1.0])
"""

from __future__ import annotations

import numpy as np

from mclcr_keras.metrics.detection import _check_inputs, _video_codes, video_scores

# Replicate AUCs computed per block: a block's weight matrix holds at most this many floats.
BLOCK_CELLS = 1 << 21

__all__ = ["auc_intervals", "bootstrap_aucs", "video_resample_counts"]


def _check_resamples(resamples, seed) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) \
            or resamples < 0:
        raise ValueError(f"bootstrap resamples must be an integer >= 0, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"bootstrap seed must be an integer >= 0, got {seed!r}")


def video_resample_counts(video_labels, resamples: int, seed: int) -> np.ndarray:
    """How often each video is drawn in each stratified replicate.

    Args:
        video_labels: 0 real, 1 fake per video.
        resamples: number of replicates.
        seed: seed of `numpy.random.default_rng`; the same seed gives the same replicates.

    Returns:
        ``(resamples, n_videos)`` int64 counts; in every row the real videos' counts sum to the
        number of real videos and the fake videos' counts to the number of fake videos.

    Example:

    >>> counts = video_resample_counts([0, 0, 1], resamples=4, seed=0)
    >>> counts.shape, counts[:, :2].sum(axis=1).tolist(), counts[:, 2].tolist()
    ((4, 3), [2, 2, 2, 2], [1, 1, 1, 1])
    """
    _check_resamples(resamples, seed)
    y = np.asarray(video_labels)
    rng = np.random.default_rng(seed)
    counts = np.zeros(resamples * y.size, dtype=np.int64)
    rows = np.arange(resamples)[:, None] * y.size
    for label in (0, 1):  # real first, then fake: a fixed order of draws for a seed
        members = np.flatnonzero(y == label)
        if members.size:
            drawn = members[rng.integers(0, members.size, size=(resamples, members.size))]
            counts += np.bincount((rows + drawn).ravel(), minlength=counts.size)
    return counts.reshape(resamples, y.size)


def _weighted_aucs(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                   counts: np.ndarray, pairs: bool | None = None) -> np.ndarray:
    """AUC of each replicate: sample ``i`` weighs ``counts[r, groups[i]]`` in replicate ``r``.

    ``AUC = sum over fake i, real j of w_i w_j ([s_i > s_j] + [s_i == s_j] / 2) / (W_fake W_real)``,
    the AUC of the data set holding each sample ``w`` times. Two exact ways to the same numbers,
    chosen by cost (``pairs=None``): the group-pair table (`_pair_aucs`, many samples per group)
    or the weighted ranks of the samples (`_rank_aucs`, many groups).
    """
    fake = labels == 1
    n_fake = np.unique(groups[fake]).size
    n_real = np.unique(groups[~fake]).size
    if pairs is None:
        pairs = n_fake * n_real <= 16 * scores.size
    return (_pair_aucs if pairs else _rank_aucs)(scores, fake, groups, counts)


def _pair_aucs(scores, fake, groups, counts) -> np.ndarray:
    """``twice_wins[v, u]`` = 2 x (pairs won + ties / 2) of fake group ``v`` against real group
    ``u``, built once; then each replicate is the bilinear form ``c_fake @ twice_wins @ c_real``."""
    fake_groups, fake_local = np.unique(groups[fake], return_inverse=True)
    real_groups, real_local = np.unique(groups[~fake], return_inverse=True)
    fake_scores, real_scores = scores[fake], scores[~fake]
    order = np.lexsort((real_scores, real_local))  # by group, then by score
    real_scores, real_local = real_scores[order], real_local[order]
    bounds = np.searchsorted(real_local, np.arange(real_groups.size + 1))
    twice_wins = np.empty((fake_groups.size, real_groups.size))
    for u in range(real_groups.size):
        group_scores = real_scores[bounds[u]:bounds[u + 1]]
        wins = (np.searchsorted(group_scores, fake_scores, "left")
                + np.searchsorted(group_scores, fake_scores, "right"))
        twice_wins[:, u] = np.bincount(fake_local, weights=wins, minlength=fake_groups.size)
    c_fake = counts[:, fake_groups].astype(np.float64)
    c_real = counts[:, real_groups].astype(np.float64)
    won = np.einsum("rv,rv->r", c_fake @ twice_wins, c_real)
    n_fake = c_fake @ np.bincount(fake_local, minlength=fake_groups.size)
    n_real = c_real @ np.diff(bounds)
    return won / (2.0 * n_fake * n_real)


def _rank_aucs(scores, fake, groups, counts) -> np.ndarray:
    """Samples sorted by score once; per block of replicates, the real and fake weight of each
    tie group (`numpy.add.reduceat`) and the real weight below it (cumulative sum)."""
    order = np.argsort(scores, kind="stable")
    s, g = scores[order], groups[order]
    fake_f = fake[order].astype(np.float64)
    real_f = 1.0 - fake_f
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # tie groups of equal scores
    out = np.empty(counts.shape[0])
    block = max(1, BLOCK_CELLS // max(1, s.size))
    for lo in range(0, counts.shape[0], block):
        w = counts[lo:lo + block][:, g].astype(np.float64)  # (block, samples)
        real = np.add.reduceat(w * real_f, starts, axis=1)
        fakes = np.add.reduceat(w * fake_f, starts, axis=1)
        below = np.cumsum(real, axis=1) - real
        out[lo:lo + block] = (np.sum(fakes * (below + 0.5 * real), axis=1)
                              / (fakes.sum(axis=1) * real.sum(axis=1)))
    return out


def bootstrap_aucs(video_keys, labels, probabilities, *, resamples: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame and video AUC of each stratified video-level replicate.

    Args:
        video_keys: one key per frame, see `mclcr_keras.metrics.video_scores`.
        labels: 0 real, 1 fake per frame; both classes must be present.
        probabilities: fake probability per frame.
        resamples: number of replicates.
        seed: seed of the replicates (`video_resample_counts`; videos numbered in order of
            first appearance).

    Returns:
        ``(frame_aucs, video_aucs)``, two arrays of shape ``(resamples,)``.

    Example:

    >>> f, v = bootstrap_aucs(["a", "b", "c"], [0, 1, 1], [0.2, 0.9, 0.1], resamples=3, seed=1)
    >>> f.shape, bool(np.all(f == v))
    ((3,), True)
    """
    y, p = _check_inputs(labels, probabilities)
    _, codes = _video_codes(video_keys, y.size)
    _, video_y, video_p = video_scores(video_keys, y, p)  # checks one label per video
    if np.unique(video_y).size < 2:
        raise ValueError("bootstrap AUC needs real and fake videos, got one class only")
    counts = video_resample_counts(video_y, resamples, seed)
    frame = _weighted_aucs(p, y, codes, counts)
    video = _weighted_aucs(video_p, video_y, np.arange(video_y.size), counts)
    return frame, video


def auc_intervals(video_keys, labels, probabilities, *, resamples: int, seed: int,
                  confidence: float = 0.95) -> dict:
    """Percentile bootstrap intervals of frame and video AUC (stratified, by video).

    Args:
        video_keys: one key per frame, normally ``(dataset, method, video_id)``.
        labels: 0 real, 1 fake per frame.
        probabilities: fake probability per frame.
        resamples: number of replicates; 0 turns the bootstrap off.
        seed: seed of the replicates.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``{"frame": [low, high] | None, "video": [low, high] | None}``: ``None`` when
        ``resamples`` is 0 or a class is missing (AUC undefined).

    Example:

    >>> auc_intervals(["a", "b"], [0, 0], [0.1, 0.2], resamples=100, seed=0)
    {'frame': None, 'video': None}
    """
    _check_resamples(resamples, seed)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, p = _check_inputs(labels, probabilities)
    if resamples == 0 or np.unique(y).size < 2:
        return {"frame": None, "video": None}
    frame, video = bootstrap_aucs(video_keys, y, p, resamples=resamples, seed=seed)
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    return {"frame": [float(v) for v in np.quantile(frame, q)],
            "video": [float(v) for v in np.quantile(video, q)]}

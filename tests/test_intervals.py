"""mclcr_keras.metrics.bootstrap: AUC intervals from stratified video resamples.

Each replicate is checked against scikit-learn on the explicitly resampled frames; the intervals
against properties a video-level percentile bootstrap has and a frame-level one has not.
"""

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mclcr_keras import metrics as M
from mclcr_keras.metrics import bootstrap


def make_videos(n_real, n_fake, frames, seed, video_spread=0.15, frame_noise=0.1, decimals=None):
    """Frames of videos with a per-video offset (frames of one video are correlated)."""
    rng = np.random.default_rng(seed)
    video_label = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    offset = 0.4 + 0.2 * video_label + rng.normal(0, video_spread, video_label.size)
    per_video = np.full(video_label.size, frames) if np.isscalar(frames) else np.asarray(frames)
    vid = np.repeat(np.arange(video_label.size), per_video)
    p = np.clip(offset[vid] + rng.normal(0, frame_noise, vid.size), 0, 1)
    if decimals is not None:
        p = np.round(p, decimals)
    method = np.where(video_label[vid] == 1, "Deepfakes", "original")
    keys = pd.DataFrame({"dataset": "ffpp", "method": method, "video_id": vid.astype(str)})
    return keys, video_label[vid], p


def frame_bootstrap_width(y, p, resamples, seed):
    """Reference: a (wrong for video data) frame-level stratified bootstrap, with scikit-learn."""
    rng = np.random.default_rng(seed)
    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    aucs = []
    for _ in range(resamples):
        idx = np.r_[rng.choice(real, real.size), rng.choice(fake, fake.size)]
        aucs.append(roc_auc_score(y[idx], p[idx]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return high - low


def width(interval):
    return interval[1] - interval[0]


@pytest.mark.parametrize("pairs", [None, True, False])
def test_each_replicate_is_the_auc_of_the_resampled_frames(pairs):
    frames = np.random.default_rng(9).integers(1, 7, 16)  # 1-6 frames per video
    keys, y, p = make_videos(7, 9, frames, seed=2, decimals=1)  # many ties
    order = np.random.default_rng(3).permutation(y.size)  # frames of a video not contiguous
    keys, y, p = keys.iloc[order].reset_index(drop=True), y[order], p[order]
    code, _ = pd.factorize(keys.agg("/".join, axis=1))  # videos numbered by first appearance
    video = pd.DataFrame({"code": code, "y": y, "p": p}).groupby("code").agg(
        y=("y", "first"), p=("p", "mean"))
    counts = M.video_resample_counts(video["y"].to_numpy(), 40, seed=5)
    if pairs is None:
        frame_aucs, video_aucs = M.bootstrap_aucs(keys, y, p, resamples=40, seed=5)
    else:
        frame_aucs = bootstrap._weighted_aucs(p, y, code, counts, pairs=pairs)
        video_aucs = bootstrap._weighted_aucs(video["p"].to_numpy(), video["y"].to_numpy(),
                                              np.arange(len(video)), counts, pairs=pairs)
    for r in range(40):
        times = counts[r, code]  # each frame as often as its video was drawn
        assert frame_aucs[r] == pytest.approx(
            roc_auc_score(np.repeat(y, times), np.repeat(p, times)), abs=1e-12)
        assert video_aucs[r] == pytest.approx(
            roc_auc_score(np.repeat(video["y"], counts[r]), np.repeat(video["p"], counts[r])),
            abs=1e-12)
    interval = M.auc_intervals(keys, y, p, resamples=40, seed=5)
    np.testing.assert_allclose(interval["frame"], np.percentile(frame_aucs, [2.5, 97.5]))
    np.testing.assert_allclose(interval["video"], np.percentile(video_aucs, [2.5, 97.5]))


def test_replicates_do_not_depend_on_the_block_size(monkeypatch):
    keys, y, p = make_videos(30, 30, 4, seed=4)
    code = pd.factorize(keys["video_id"])[0]
    counts = M.video_resample_counts(np.r_[np.zeros(30, int), np.ones(30, int)], 50, seed=1)
    whole = bootstrap._weighted_aucs(p, y, code, counts, pairs=False)
    monkeypatch.setattr(bootstrap, "BLOCK_CELLS", 7 * y.size)  # blocks of 7 replicates
    np.testing.assert_array_equal(bootstrap._weighted_aucs(p, y, code, counts, pairs=False), whole)


def test_resamples_are_stratified_by_class():
    labels = np.r_[np.zeros(5, int), np.ones(12, int)]
    counts = M.video_resample_counts(labels, 2000, seed=0)
    assert counts.shape == (2000, 17) and counts.min() >= 0
    assert (counts[:, :5].sum(axis=1) == 5).all() and (counts[:, 5:].sum(axis=1) == 12).all()
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.1)  # every video equally likely
    assert (counts[:, :5] > 0).any(axis=1).all()  # every replicate has real videos


def test_same_seed_same_interval_other_seed_another():
    keys, y, p = make_videos(20, 30, 5, seed=1)
    first = M.auc_intervals(keys, y, p, resamples=500, seed=11)
    assert M.auc_intervals(keys, y, p, resamples=500, seed=11) == first
    assert M.auc_intervals(keys, y, p, resamples=500, seed=12) != first


@pytest.mark.parametrize("seed", range(5))
def test_interval_contains_the_point_estimate(seed):
    keys, y, p = make_videos(25, 35, 6, seed=seed)
    interval = M.auc_intervals(keys, y, p, resamples=1000, seed=seed)
    frame_auc = roc_auc_score(y, p)
    video = pd.DataFrame({"v": keys["video_id"], "y": y, "p": p}).groupby("v").agg(
        y=("y", "first"), p=("p", "mean"))
    video_auc = roc_auc_score(video["y"], video["p"])
    assert interval["frame"][0] < frame_auc < interval["frame"][1]
    assert interval["video"][0] < video_auc < interval["video"][1]
    assert 0.0 <= interval["video"][0] < interval["video"][1] <= 1.0


def test_interval_narrows_with_more_videos():
    small = M.auc_intervals(*make_videos(10, 10, 8, seed=0), resamples=1000, seed=0)
    large = M.auc_intervals(*make_videos(160, 160, 8, seed=0), resamples=1000, seed=0)
    # 16x the videos: about 1/4 the width.
    assert width(large["frame"]) < 0.5 * width(small["frame"])
    assert width(large["video"]) < 0.5 * width(small["video"])


def test_resampling_is_by_video_duplicated_frames_change_nothing():
    keys, y, p = make_videos(30, 30, 8, seed=6)
    twice_keys = pd.concat([keys, keys], ignore_index=True)  # every frame of every video twice
    twice_y, twice_p = np.r_[y, y], np.r_[p, p]
    once = M.auc_intervals(keys, y, p, resamples=1000, seed=3)
    twice = M.auc_intervals(twice_keys, twice_y, twice_p, resamples=1000, seed=3)
    np.testing.assert_allclose(twice["frame"], once["frame"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(twice["video"], once["video"], rtol=0, atol=1e-12)
    # A frame-level bootstrap takes the copies for new evidence: about 1/sqrt(2) the width.
    assert frame_bootstrap_width(twice_y, twice_p, 300, 0) < 0.85 * frame_bootstrap_width(
        y, p, 300, 0)


def test_correlated_frames_give_a_wider_interval_than_a_frame_bootstrap():
    keys, y, p = make_videos(30, 30, 16, seed=8, video_spread=0.2, frame_noise=0.03)
    by_video = M.auc_intervals(keys, y, p, resamples=1000, seed=0)
    assert width(by_video["frame"]) > 1.5 * frame_bootstrap_width(y, p, 300, 0)


def test_off_or_undefined_gives_none():
    keys, y, p = make_videos(5, 5, 3, seed=0)
    assert M.auc_intervals(keys, y, p, resamples=0, seed=0) == {"frame": None, "video": None}
    real = y == 0
    assert M.auc_intervals(keys[real], y[real], p[real], resamples=100, seed=0) == {
        "frame": None, "video": None}
    with pytest.raises(ValueError, match="needs real and fake videos"):
        M.bootstrap_aucs(keys[real], y[real], p[real], resamples=10, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"resamples": -1, "seed": 0}, "resamples must be an integer >= 0, got -1"),
    ({"resamples": 1.5, "seed": 0}, "resamples must be an integer >= 0, got 1.5"),
    ({"resamples": True, "seed": 0}, "resamples must be an integer >= 0, got True"),
    ({"resamples": 10, "seed": -2}, "seed must be an integer >= 0, got -2"),
    ({"resamples": 10, "seed": 0, "confidence": 1.0}, r"confidence must be in \(0, 1\)"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        M.auc_intervals(["a", "b"], [0, 1], [0.2, 0.8], **kwargs)


def test_a_key_with_both_labels_is_refused():
    with pytest.raises(ValueError, match="has frames labelled both real and fake"):
        M.auc_intervals(["a", "a", "b"], [0, 1, 1], [0.1, 0.2, 0.3], resamples=10, seed=0)


def test_a_thousand_resamples_of_140_videos_take_well_under_a_second_or_two():
    keys, y, p = make_videos(70, 70, 32, seed=0)  # 4480 frames
    start = time.perf_counter()
    M.auc_intervals(keys, y, p, resamples=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"{elapsed:.2f} s"  # 0.04-0.1 s measured on 2 shared cores

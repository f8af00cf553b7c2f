"""mclcr_keras.metrics (detection metrics; calibration and intervals in test_calibration.py and
test_intervals.py) and the protocol built on it (mclcr_keras.evaluation.protocol) against
scikit-learn, pandas and brute-force NumPy references."""

import logging
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
    roc_curve,
)

from mclcr_keras import metrics as M
from mclcr_keras.evaluation import protocol

# ---------------------------------------------------------------- independent references


def brute_auc(y, p):
    """P(score_fake > score_real) + 0.5 P(tie), over all real x fake pairs."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def brute_roc(y, p):
    """ROC points for every distinct threshold (predict fake when score >= t), t from +inf down."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    thresholds = np.concatenate([[np.inf], np.unique(p)[::-1]])
    tpr = np.array([np.mean(p[y == 1] >= t) for t in thresholds])
    fpr = np.array([np.mean(p[y == 0] >= t) for t in thresholds])
    return fpr, tpr


def eer_by_segments(fpr, tpr):
    """Intersects each ROC segment with the line FPR = 1 - TPR (i.e. fpr + tpr = 1)."""
    for (f0, t0), (f1, t1) in zip(zip(fpr[:-1], tpr[:-1]), zip(fpr[1:], tpr[1:])):
        s0, s1 = f0 + t0 - 1.0, f1 + t1 - 1.0
        if s0 == 0.0:
            return f0
        if s0 < 0.0 <= s1:
            lam = s0 / (s0 - s1)
            return f0 + lam * (f1 - f0)
    raise AssertionError("ROC never crossed the EER line")


def brute_ap(y, p):
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds, highest first."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(p)[::-1]:
        called = p >= t
        tp = np.sum(called & (y == 1))
        recall = tp / np.sum(y == 1)
        precision = tp / np.sum(called)
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def random_case(seed, n=None, decimals=None):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(2, 300))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0.0, 1.0)
    if decimals is not None:
        p = np.round(p, decimals)  # many ties
    return y, p


# ---------------------------------------------------------------- frame metrics


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_frame_metrics_match_references_on_random_inputs(seed, decimals):
    y, p = random_case(seed, decimals=decimals)
    m = M.frame_metrics(y, p)
    assert m["auc"] == pytest.approx(brute_auc(y, p), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["ap"] == pytest.approx(brute_ap(y, p), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["eer"] == pytest.approx(eer_by_segments(*brute_roc(y, p)), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, p)
    assert m["eer"] == pytest.approx(eer_by_segments(fpr, tpr), abs=1e-12)
    assert m["acc"] == pytest.approx(np.mean((p > 0.5) == (y == 1)))
    assert (m["n"], m["n_real"], m["n_fake"]) == (y.size, int(np.sum(y == 0)), int(y.sum()))


def test_eer_hand_computed_with_interpolation():
    # Ranked high to low: F(.9) F(.8) R(.7) F(.5) R(.2). The ROC runs (0,0) (0,1/3) (0,2/3)
    # (1/2,2/3) (1/2,1) (1,1); FPR = FNR = 1/3 at 2/3 of the segment (0,2/3)-(1/2,2/3).
    y = [1, 1, 0, 1, 0]
    p = [0.9, 0.8, 0.7, 0.5, 0.2]
    assert M.equal_error_rate(y, p) == pytest.approx(1 / 3)
    assert M.frame_metrics(y, p)["eer"] == pytest.approx(1 / 3)


def test_all_equal_scores():
    y = np.array([0, 0, 0, 1, 1])
    p = np.full(5, 0.7)
    m = M.frame_metrics(y, p)
    assert m["auc"] == 0.5
    assert m["eer"] == 0.5
    assert m["ap"] == pytest.approx(2 / 5)  # precision = prevalence at the only threshold
    assert m["acc"] == pytest.approx(2 / 5)  # all called fake


def test_perfect_and_inverted_separation():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.0, 0.2, 0.6, 0.9, 1.0])
    m = M.frame_metrics(y, p)
    assert (m["auc"], m["eer"], m["ap"], m["acc"]) == (1.0, 0.0, 1.0, 1.0)
    inv = M.frame_metrics(y, 1.0 - p)
    assert inv["auc"] == 0.0
    assert inv["eer"] == 1.0
    assert inv["acc"] == 0.0


def test_threshold_is_strict_and_configurable():
    y = [0, 1, 1]
    p = [0.5, 0.5, 0.8]
    assert M.frame_metrics(y, p)["acc"] == pytest.approx(2 / 3)  # 0.5 is not > 0.5
    assert M.frame_metrics(y, p, threshold=0.4)["acc"] == pytest.approx(2 / 3)
    assert M.frame_metrics(y, p, threshold=0.6)["acc"] == pytest.approx(2 / 3)
    assert M.frame_metrics(y, p, threshold=0.9)["acc"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_and_warning(label, caplog):
    with caplog.at_level(logging.WARNING, logger="mclcr_keras.metrics"):
        m = M.frame_metrics([label] * 4, [0.1, 0.6, 0.7, 0.9])
    assert math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["ap"])
    assert m["acc"] == pytest.approx(0.75 if label == 1 else 0.25)
    assert "undefined" in caplog.text
    assert math.isnan(M.equal_error_rate([label] * 2, [0.2, 0.3]))


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        ([0, 2], [0.1, 0.2], r"labels must be 0 \(real\) or 1 \(fake\), got 2$"),
        ([0, 1], [0.1], "differ in length"),
        ([], [], "empty"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\], got range \[0.1, 1.5\]"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_inputs_raise(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        M.frame_metrics(labels, probs)


# ---------------------------------------------------------------- video level


def test_video_scores_mean_by_hand():
    keys = [("ff", "orig", "1"), ("ff", "DF", "1"), ("ff", "orig", "1"), ("ff", "DF", "1"),
            ("ff", "orig", "2")]
    y = [0, 1, 0, 1, 0]
    p = [0.2, 0.9, 0.4, 0.5, 0.8]
    vkeys, vy, vp = M.video_scores(keys, y, p)
    # The fake "1" of DF is a different video from the real "1": keys include the method.
    assert vkeys == [("ff", "orig", "1"), ("ff", "DF", "1"), ("ff", "orig", "2")]
    assert vy.tolist() == [0, 1, 0]
    np.testing.assert_allclose(vp, [0.3, 0.7, 0.8])
    vm = M.video_metrics(keys, y, p)
    assert vm["n_videos"] == 3 and (vm["n_real"], vm["n_fake"]) == (2, 1)
    assert vm["auc"] == pytest.approx(0.5)  # 0.7 beats 0.3, loses to 0.8
    assert vm["acc"] == pytest.approx(2 / 3)  # 0.3 real ok, 0.7 fake ok, 0.8 real wrong


def test_video_scores_accept_array_and_dataframe_keys():
    keys = np.array([["a", "x"], ["a", "x"], ["b", "x"]])
    _, vy, vp = M.video_scores(keys, [1, 1, 0], [0.6, 1.0, 0.1])
    np.testing.assert_allclose(vp, [0.8, 0.1])
    frame = pd.DataFrame(keys, columns=["dataset", "video_id"])
    assert M.video_scores(frame, [1, 1, 0], [0.6, 1.0, 0.1])[0] == [("a", "x"), ("b", "x")]


def test_video_metrics_match_pandas_groupby_on_random_data():
    rng = np.random.default_rng(3)
    n_videos, frames = 40, 7
    vid = np.repeat(np.arange(n_videos), frames)
    vlabel = rng.integers(0, 2, n_videos)
    y = vlabel[vid]
    p = np.clip(rng.normal(0.3 + 0.3 * y, 0.3), 0, 1)
    order = rng.permutation(y.size)  # frames of a video need not be contiguous
    vid, y, p = vid[order], y[order], p[order]
    ref = pd.DataFrame({"v": vid, "y": y, "p": p}).groupby("v")
    ref = ref.agg(y=("y", "first"), p=("p", "mean"))
    vm = M.video_metrics([str(v) for v in vid], y, p)
    assert vm["auc"] == pytest.approx(roc_auc_score(ref["y"], ref["p"]), abs=1e-12)
    assert vm["acc"] == pytest.approx(np.mean((ref["p"] > 0.5) == (ref["y"] == 1)))
    assert vm["n_videos"] == n_videos


def test_mixed_label_video_raises():
    with pytest.raises(ValueError, match=r"video \('ff', 'DF', '7'\) has frames labelled both"):
        M.video_scores([("ff", "DF", "7")] * 2 + [("ff", "DF", "8")], [0, 1, 1], [0.1, 0.2, 0.3])


def test_video_keys_length_mismatch_raises():
    with pytest.raises(ValueError, match="got 2 video keys for 3 frames"):
        M.video_scores(["a", "b"], [0, 1, 1], [0.1, 0.2, 0.3])


# ---------------------------------------------------------------- per method


def test_per_method_auc_against_all_real_frames():
    rng = np.random.default_rng(7)
    methods = np.array(["original"] * 30 + ["Deepfakes"] * 20 + ["FaceSwap"] * 25)
    y = (methods != "original").astype(int)
    p = rng.uniform(0, 1, y.size)
    p[methods == "Deepfakes"] = np.clip(p[methods == "Deepfakes"] + 0.3, 0, 1)
    keys = [(m, str(i // 5)) for i, m in enumerate(methods)]
    out = M.per_method_auc(methods, y, p, video_keys=keys)
    assert list(out) == ["Deepfakes", "FaceSwap"]
    real = methods == "original"
    for method in out:
        sel = real | (methods == method)
        assert out[method]["frame_auc"] == pytest.approx(brute_auc(y[sel], p[sel]), abs=1e-12)
        assert out[method]["n_frames"] == int(np.sum(methods == method))
        vkeys = [k for k, s in zip(keys, sel) if s]
        _, vy, vp = M.video_scores(vkeys, y[sel], p[sel])
        assert out[method]["video_auc"] == pytest.approx(brute_auc(vy, vp), abs=1e-12)
    assert out["Deepfakes"]["n_videos"] == 4 and out["FaceSwap"]["n_videos"] == 5


def test_per_method_real_identified_by_label_not_name():
    # Celeb-DF has two real "methods"; both are the negatives of the fake method.
    methods = ["Celeb-real", "YouTube-real", "Celeb-synthesis", "Celeb-synthesis"]
    y = [0, 0, 1, 1]
    p = [0.1, 0.7, 0.6, 0.9]
    out = M.per_method_auc(methods, y, p)
    assert list(out) == ["Celeb-synthesis"]
    assert out["Celeb-synthesis"]["frame_auc"] == pytest.approx(0.75)
    assert "video_auc" not in out["Celeb-synthesis"]


def test_per_method_without_real_is_nan(caplog):
    with caplog.at_level(logging.WARNING):
        out = M.per_method_auc(["A", "B"], [1, 1], [0.4, 0.6])
    assert math.isnan(out["A"]["frame_auc"]) and math.isnan(out["B"]["frame_auc"])


# ---------------------------------------------------------------- the protocol's tables

# The columns of a predictions table, as docs/evaluation.md lists them.
COLUMNS = ["dataset", "method", "video_id", "frame_index", "label", "probability"]


def make_predictions(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, methods in {"ffpp": ["original", "Deepfakes", "Face2Face"],
                             "celebdf": ["Celeb-real", "Celeb-synthesis"]}.items():
        for method in methods:
            label = int(method not in ("original", "Celeb-real"))
            for v in range(6):
                # FF++ fakes reuse ids across methods: keys must keep them apart
                vid = f"{v:03d}" if label == 0 else f"{v:03d}_{v + 1:03d}"
                for f in range(4):
                    prob = float(np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1))
                    rows.append((dataset, method, vid, f * 10, label, prob))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_evaluate_predictions_matches_direct_computation():
    df = make_predictions()
    r = protocol.evaluate_predictions(df)
    assert set(r) == {"frame", "video", "per_method", "per_dataset"}
    y, p = df["label"].to_numpy(), df["probability"].to_numpy()
    assert r["frame"]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert r["frame"]["n"] == len(df) == 5 * 6 * 4
    vids = df.groupby(["dataset", "method", "video_id"]).agg(y=("label", "first"),
                                                             p=("probability", "mean"))
    assert r["video"]["n_videos"] == len(vids) == 30
    assert r["video"]["auc"] == pytest.approx(roc_auc_score(vids["y"], vids["p"]), abs=1e-12)
    assert set(r["per_method"]) == {"Deepfakes", "Face2Face", "Celeb-synthesis"}
    assert r["per_method"]["Deepfakes"]["n_videos"] == 6
    assert set(r["per_dataset"]) == {"ffpp", "celebdf"}
    ff = df[df["dataset"] == "ffpp"]
    assert r["per_dataset"]["ffpp"]["frame"]["auc"] == pytest.approx(
        roc_auc_score(ff["label"], ff["probability"]), abs=1e-12)
    ff_df = ff[ff["method"].isin(["original", "Deepfakes"])]
    assert r["per_dataset"]["ffpp"]["per_method"]["Deepfakes"]["frame_auc"] == pytest.approx(
        roc_auc_score(ff_df["label"], ff_df["probability"]), abs=1e-12)
    assert set(r["per_dataset"]["celebdf"]["per_method"]) == {"Celeb-synthesis"}


def test_evaluate_predictions_rejects_bad_tables():
    df = make_predictions()
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['probability'\]"):
        protocol.evaluate_predictions(df.drop(columns="probability"))
    with pytest.raises(ValueError, match="more than once"):
        protocol.evaluate_predictions(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="empty"):
        protocol.evaluate_predictions(df.iloc[:0])


def test_cross_dataset_table():
    df = make_predictions()
    results = {
        "ffpp": protocol.evaluate_predictions(df[df["dataset"] == "ffpp"]),
        "celebdf": protocol.evaluate_predictions(df[df["dataset"] == "celebdf"]),
    }
    table = protocol.cross_dataset_table(results)
    assert list(table.index) == ["ffpp", "celebdf"]
    assert list(table.columns) == ["frame_auc", "frame_auc_ci95_low", "frame_auc_ci95_high",
                                   "video_auc", "video_auc_ci95_low", "video_auc_ci95_high",
                                   "eer", "ap", "acc", "acc_at_0.5", "brier", "ece", "n_frames",
                                   "n_videos"]
    assert table.loc["ffpp", "acc_at_0.5"] == results["ffpp"]["frame"]["acc_at_0.5"]
    assert table.loc["celebdf", "video_auc"] == results["celebdf"]["video"]["auc"]
    assert table.loc["ffpp", "eer"] == results["ffpp"]["frame"]["eer"]
    assert table.loc["ffpp", "brier"] == results["ffpp"]["frame"]["brier"]
    assert table.loc["ffpp", "ece"] == results["ffpp"]["frame"]["ece"]
    for level in ("frame", "video"):
        low, high = results["celebdf"][level]["auc_ci95"]
        assert table.loc["celebdf", f"{level}_auc_ci95_low"] == low
        assert table.loc["celebdf", f"{level}_auc_ci95_high"] == high
    assert table.loc["ffpp", "n_videos"] == 18
    with pytest.raises(ValueError, match="'x' is not an evaluate_predictions"):
        protocol.cross_dataset_table({"x": {"auc": 1.0}})
    # Without bootstrap the bounds are NaN; the printed table shows "-" for the interval.
    off = protocol.cross_dataset_table(
        {"ffpp": protocol.evaluate_predictions(df[df["dataset"] == "ffpp"], bootstrap=0)})
    assert off[["frame_auc_ci95_low", "video_auc_ci95_high"]].isna().all().all()
    assert off.loc["ffpp", "frame_auc"] == table.loc["ffpp", "frame_auc"]


def test_evaluate_predictions_adds_calibration_and_intervals():
    df = make_predictions()
    r = protocol.evaluate_predictions(df, bootstrap=300, seed=4)
    y, p = df["label"].to_numpy(), df["probability"].to_numpy()
    assert r["frame"]["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert r["frame"]["ece"] == pytest.approx(M.expected_calibration_error(y, p), abs=1e-12)
    for level in ("frame", "video"):
        low, high = r[level]["auc_ci95"]
        assert low <= r[level]["auc"] <= high
    again = protocol.evaluate_predictions(df, bootstrap=300, seed=4)
    assert again["frame"]["auc_ci95"] == r["frame"]["auc_ci95"]
    # Intervals at the record-set level only; calibration in every frame entry.
    assert "auc_ci95" not in r["per_dataset"]["ffpp"]["frame"]
    ff = df[df["dataset"] == "ffpp"]
    assert r["per_dataset"]["ffpp"]["frame"]["brier"] == pytest.approx(
        brier_score_loss(ff["label"], ff["probability"]), abs=1e-12)
    off = protocol.evaluate_predictions(df, bootstrap=0)
    assert off["frame"]["auc_ci95"] is None and off["video"]["auc_ci95"] is None
    real_only = protocol.evaluate_predictions(df[df["label"] == 0])
    assert real_only["frame"]["auc_ci95"] is None and real_only["video"]["auc_ci95"] is None

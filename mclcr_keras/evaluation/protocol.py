"""The field's evaluation protocol on a predictions table: frame, video, per-method, per-dataset.

A predictions table has one row per scored frame (`PREDICTION_COLUMNS`); `evaluate_predictions`
computes every metric of ``metrics.json`` from it with `mclcr_keras.metrics` (detection,
calibration, bootstrap intervals of the AUCs), and `cross_dataset_table` puts several record sets
side by side (``cross_dataset.csv``).

Example:

>>> predictions = pd.DataFrame({
...     "dataset": "ffpp", "method": ["original", "original", "Deepfakes", "Deepfakes"],
...     "video_id": ["000", "001", "000_003", "001_002"], "frame_index": 0,
...     "label": [0, 0, 1, 1], "probability": [0.2, 0.6, 0.7, 0.4]})
>>> result = evaluate_predictions(predictions, bootstrap=200)
>>> result["frame"]["auc"], result["video"]["n_videos"], sorted(result["per_method"])
(0.75, 4, ['Deepfakes'])
>>> round(result["frame"]["brier"], 4), result["frame"]["auc_ci95"]
(0.2125, [0.0, 1.0])
>>> table = cross_dataset_table({"ffpp": result})
>>> list(table.index), float(table.loc["ffpp", "frame_auc"]), int(table.loc["ffpp", "n_frames"])
(['ffpp'], 0.75, 4)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mclcr_keras.evaluation.options import CONFIDENCE, DEFAULTS
from mclcr_keras.metrics import (
    auc_intervals,
    calibration_metrics,
    frame_metrics,
    operating_point,
    per_method_auc,
    video_metrics,
    video_scores,
)

# What evaluate_predictions needs of a predictions table (predictions.csv has more columns).
PREDICTION_COLUMNS = ("dataset", "method", "video_id", "frame_index", "label", "probability")
VIDEO_KEY_COLUMNS = ("dataset", "method", "video_id")
# ACC is also reported at the conventional 0.5, beside the chosen threshold (key ACC_AT_HALF).
HALF = 0.5
ACC_AT_HALF = "acc_at_0.5"
# The float columns of the cross-dataset table (then n_frames, n_videos).
TABLE_COLUMNS = ("frame_auc", "frame_auc_ci95_low", "frame_auc_ci95_high", "video_auc",
                 "video_auc_ci95_low", "video_auc_ci95_high", "eer", "ap", "acc", ACC_AT_HALF,
                 "brier", "ece")

__all__ = ["ACC_AT_HALF", "HALF", "PREDICTION_COLUMNS", "TABLE_COLUMNS", "VIDEO_KEY_COLUMNS",
           "cross_dataset_table", "evaluate_predictions"]


def _check_table(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of predictions, got {type(df).__name__}")
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"predictions table lacks column(s) {missing}; has {list(df.columns)}"
        )
    if len(df) == 0:
        raise ValueError("predictions table is empty")
    dup = df.duplicated(list(VIDEO_KEY_COLUMNS) + ["frame_index"])
    if dup.any():
        row = df.loc[dup].iloc[0]
        raise ValueError(
            "predictions table holds frame "
            f"{tuple(row[c] for c in VIDEO_KEY_COLUMNS)} #{row['frame_index']} more than once"
        )


def _evaluate_subset(df: pd.DataFrame, threshold: float) -> dict:
    y = df["label"].to_numpy()
    p = df["probability"].to_numpy(dtype=np.float64)
    keys = df[list(VIDEO_KEY_COLUMNS)].astype(str)
    frame, video = frame_metrics(y, p, threshold), video_metrics(keys, y, p, threshold)
    _, video_y, video_p = video_scores(keys, y, p)
    frame[ACC_AT_HALF] = float(np.mean((p > HALF) == y))
    video[ACC_AT_HALF] = float(np.mean((video_p > HALF) == video_y))
    return {
        "frame": {**frame, **operating_point(y, p, threshold), **calibration_metrics(y, p)},
        "video": video,
        "per_method": per_method_auc(df["method"].astype(str), y, p, video_keys=keys),
    }


def evaluate_predictions(df: pd.DataFrame, threshold: float = HALF, *,
                         bootstrap: int = DEFAULTS.bootstrap,
                         seed: int = DEFAULTS.bootstrap_seed) -> dict:
    """All metrics of a predictions table (what ``metrics.json`` holds per record set).

    Args:
        df: one row per frame with columns ``dataset, method, video_id, frame_index, label,
            probability`` (other columns are ignored).
        threshold: decision threshold for ACC at frame and video level (also for the frame
            ``fpr``, ``fnr`` and ``balanced_acc``); ``acc_at_0.5`` is ACC at 0.5 whatever it is.
        bootstrap: stratified video resamples of the AUC intervals (0: no intervals).
        seed: seed of the resamples.

    Returns:
        ``{"frame": {...}, "video": {...}, "per_method": {method: {"frame_auc", "n_frames",
        "video_auc", "n_videos"}}, "per_dataset": {dataset: {"frame", "video", "per_method"}}}``.
        The top level covers the whole table (per-method: each fake method against every real
        frame of the table); ``per_dataset`` repeats the evaluation inside each dataset. Every
        ``frame`` holds ``brier`` and ``ece``; the top level's ``frame`` and ``video`` hold
        ``auc_ci95``, ``[low, high]`` or None (``bootstrap=0``, or a class missing). ``frame``
        and ``video`` hold ``acc`` at ``threshold`` and ``acc_at_0.5``; ``frame`` also ``fpr``,
        ``fnr`` and ``balanced_acc`` at ``threshold`` (`mclcr_keras.metrics.operating_point`).

    Example:

    >>> df = pd.DataFrame({"dataset": "ffpp", "method": ["original", "Deepfakes"],
    ...                    "video_id": ["000", "000_003"], "frame_index": 0,
    ...                    "label": [0, 1], "probability": [0.2, 0.7]})
    >>> evaluate_predictions(df)["video"]["auc"]
    1.0
    """
    _check_table(df)
    result = _evaluate_subset(df, threshold)
    intervals = auc_intervals(
        df[list(VIDEO_KEY_COLUMNS)].astype(str), df["label"].to_numpy(),
        df["probability"].to_numpy(dtype=np.float64), resamples=bootstrap, seed=seed,
        confidence=CONFIDENCE,
    )
    result["frame"]["auc_ci95"] = intervals["frame"]
    result["video"]["auc_ci95"] = intervals["video"]
    result["per_dataset"] = {
        str(name): _evaluate_subset(group, threshold)
        for name, group in df.groupby(df["dataset"].astype(str), sort=True)
    }
    return result


def auc_columns(result: dict) -> dict:
    """Frame and video AUC with the bounds of their 95% intervals (NaN without), as table
    columns (``frame_auc``, ``frame_auc_ci95_low``, ..., ``video_auc_ci95_high``)."""
    columns = {}
    for level in ("frame", "video"):
        values = result[level]
        low, high = values.get("auc_ci95") or (np.nan, np.nan)
        columns.update({f"{level}_auc": values["auc"], f"{level}_auc_ci95_low": low,
                        f"{level}_auc_ci95_high": high})
    return columns


def cross_dataset_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per evaluated record set: frame AUC, video AUC, EER, AP, ACC (frame level).

    Args:
        results: ``{name: evaluate_predictions(...)}``, e.g. ``{"ffpp": ..., "celebdf": ...}``.

    Returns:
        A DataFrame indexed by name with columns `TABLE_COLUMNS` (AUCs with the bounds of their
        95% intervals, NaN without; EER, AP, ACC at the threshold and at 0.5, Brier and ECE at
        frame level), then
        ``n_frames, n_videos``.

    Example:

        table = cross_dataset_table({"ffpp": result_ffpp, "celebdf": result_celebdf})
        table.to_csv("cross_dataset.csv")
    """
    if not results:
        raise ValueError("cross_dataset_table needs at least one result")
    rows = []
    for name, r in results.items():
        try:
            frame, video = r["frame"], r["video"]
        except (KeyError, TypeError):
            raise ValueError(
                f"result {name!r} is not an evaluate_predictions() dict (needs 'frame' and 'video')"
            ) from None
        rows.append(
            {
                "name": name,
                **auc_columns(r),
                "eer": frame["eer"],
                "ap": frame["ap"],
                "acc": frame["acc"],
                ACC_AT_HALF: frame.get(ACC_AT_HALF, np.nan),
                "brier": frame.get("brier", np.nan),
                "ece": frame.get("ece", np.nan),
                "n_frames": frame["n"],
                "n_videos": video["n_videos"],
            }
        )
    return pd.DataFrame(rows).set_index("name")

"""The field's evaluation protocol on a predictions table: frame, video, per-method, per-dataset.

A predictions table has one row per scored frame (`PREDICTION_COLUMNS`); `evaluate_predictions`
computes every metric of ``metrics.json`` from it with `mclcr_keras.metrics`, and
`cross_dataset_table` puts several record sets side by side (``cross_dataset.csv``).

Example:

>>> predictions = pd.DataFrame({
...     "dataset": "ffpp", "method": ["original", "original", "Deepfakes", "Deepfakes"],
...     "video_id": ["000", "001", "000_003", "001_002"], "frame_index": 0,
...     "label": [0, 0, 1, 1], "probability": [0.2, 0.6, 0.7, 0.4]})
>>> result = evaluate_predictions(predictions)
>>> result["frame"]["auc"], result["video"]["n_videos"], sorted(result["per_method"])
(0.75, 4, ['Deepfakes'])
>>> table = cross_dataset_table({"ffpp": result})
>>> list(table.index), float(table.loc["ffpp", "frame_auc"]), int(table.loc["ffpp", "n_frames"])
(['ffpp'], 0.75, 4)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mclcr_keras.metrics import frame_metrics, per_method_auc, video_metrics

# What evaluate_predictions needs of a predictions table (predictions.csv has more columns).
PREDICTION_COLUMNS = ("dataset", "method", "video_id", "frame_index", "label", "probability")
VIDEO_KEY_COLUMNS = ("dataset", "method", "video_id")
TABLE_COLUMNS = ("frame_auc", "video_auc", "eer", "ap", "acc")

__all__ = ["PREDICTION_COLUMNS", "TABLE_COLUMNS", "VIDEO_KEY_COLUMNS", "cross_dataset_table",
           "evaluate_predictions"]


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
    return {
        "frame": frame_metrics(y, p, threshold),
        "video": video_metrics(keys, y, p, threshold),
        "per_method": per_method_auc(df["method"].astype(str), y, p, video_keys=keys),
    }


def evaluate_predictions(df: pd.DataFrame, threshold: float = 0.5) -> dict:
    """All metrics of a predictions table (what ``metrics.json`` holds).

    Args:
        df: one row per frame with columns ``dataset, method, video_id, frame_index, label,
            probability`` (other columns are ignored).
        threshold: decision threshold for ACC at frame and video level.

    Returns:
        ``{"frame": {...}, "video": {...}, "per_method": {method: {"frame_auc", "n_frames",
        "video_auc", "n_videos"}}, "per_dataset": {dataset: {"frame", "video", "per_method"}}}``.
        The top level covers the whole table (per-method: each fake method against every real
        frame of the table); ``per_dataset`` repeats the evaluation inside each dataset.

    Example:

    >>> df = pd.DataFrame({"dataset": "ffpp", "method": ["original", "Deepfakes"],
    ...                    "video_id": ["000", "000_003"], "frame_index": 0,
    ...                    "label": [0, 1], "probability": [0.2, 0.7]})
    >>> evaluate_predictions(df)["video"]["auc"]
    1.0
    """
    _check_table(df)
    result = _evaluate_subset(df, threshold)
    result["per_dataset"] = {
        str(name): _evaluate_subset(group, threshold)
        for name, group in df.groupby(df["dataset"].astype(str), sort=True)
    }
    return result


def cross_dataset_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per evaluated record set: frame AUC, video AUC, EER, AP, ACC (frame level).

    Args:
        results: ``{name: evaluate_predictions(...)}``, e.g. ``{"ffpp": ..., "celebdf": ...}``.

    Returns:
        A DataFrame indexed by name with columns ``frame_auc, video_auc, eer, ap, acc, n_frames,
        n_videos``.

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
                "frame_auc": frame["auc"],
                "video_auc": video["auc"],
                "eer": frame["eer"],
                "ap": frame["ap"],
                "acc": frame["acc"],
                "n_frames": frame["n"],
                "n_videos": video["n_videos"],
            }
        )
    return pd.DataFrame(rows).set_index("name")

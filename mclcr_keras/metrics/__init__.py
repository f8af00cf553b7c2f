"""Metrics of the face-forgery field: detection, calibration, bootstrap intervals.

NumPy arrays in, plain dicts out (JSON-ready floats), no TensorFlow. Conventions (see
``docs/metrics.md``): label 0 = real, 1 = fake; scores are fake probabilities in [0, 1]; a frame is
called fake when ``probability > threshold`` (as ``keras.metrics.BinaryAccuracy`` and DeepfakeBench
do). Video scores are the mean frame probability per ``(dataset, method, video_id)``. Per-method
AUC compares each fake method's frames (videos) with *all* real frames (videos) of the table, real
being identified by label 0, never by a method name.

- `detection`: frame and video ACC, AUC, EER, AP; per-method AUC.
- `calibration`: Brier score, reliability bins and ECE of the frame probabilities.
- `bootstrap`: percentile intervals of frame and video AUC from stratified video resamples.
- `threshold`: the decision threshold chosen on validation scores (EER point, balanced accuracy).

Example:

>>> m = frame_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> round(m["auc"], 2), m["acc"]
(0.75, 0.75)
"""

from mclcr_keras.metrics.bootstrap import auc_intervals, bootstrap_aucs, video_resample_counts
from mclcr_keras.metrics.calibration import (
    ECE_BINS,
    brier_score,
    calibration_metrics,
    ece_from_bins,
    expected_calibration_error,
    reliability_bins,
)
from mclcr_keras.metrics.detection import (
    equal_error_rate,
    frame_metrics,
    per_method_auc,
    video_metrics,
    video_scores,
)
from mclcr_keras.metrics.threshold import THRESHOLD_CRITERIA, choose_threshold, operating_point

__all__ = [
    "ECE_BINS",
    "THRESHOLD_CRITERIA",
    "auc_intervals",
    "bootstrap_aucs",
    "brier_score",
    "calibration_metrics",
    "choose_threshold",
    "ece_from_bins",
    "equal_error_rate",
    "expected_calibration_error",
    "frame_metrics",
    "operating_point",
    "per_method_auc",
    "reliability_bins",
    "video_metrics",
    "video_resample_counts",
    "video_scores",
]

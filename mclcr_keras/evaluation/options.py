"""The options of ``python -m mclcr_keras.evaluate`` and their defaults (no TensorFlow, no sklearn).

Example:

>>> EvaluateOptions().bootstrap, EvaluateOptions().bootstrap_seed
(1000, 0)
>>> EvaluateOptions(bootstrap=-1).validate()
Traceback (most recent call last):
...
mclcr_keras.errors.UsageError: --bootstrap must be an integer >= 0 (0 turns it off), got -1
"""

from __future__ import annotations

import dataclasses

from mclcr_keras.errors import UsageError

# Coverage of the bootstrap intervals (frame.auc_ci95, video.auc_ci95).
CONFIDENCE = 0.95

__all__ = ["CONFIDENCE", "DEFAULTS", "EvaluateOptions"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class EvaluateOptions:
    """How to score and report (everything but the model, the record sets and ``--out``).

    Attributes:
        split: split directory to evaluate; ``test`` (never select models on it).
        batch_size: frames per model call (memory only).
        threshold: a frame (video) is fake when its probability (mean) is ``> threshold``;
            None (default): chosen on a val split (`mclcr_keras.evaluation.val_threshold`).
        threshold_criterion: how it is chosen, ``eer`` or ``balanced_acc``
            (`mclcr_keras.metrics.THRESHOLD_CRITERIA`).
        threshold_records: record set whose val split sets it; None: the first ``--records``.
        bootstrap: stratified video resamples for the 95% AUC intervals; 0 turns them off.
        bootstrap_seed: seed of the resamples (the same seed gives the same intervals).
        compare_paper: also put the run beside the paper's Tables 3-6
            (`mclcr_keras.evaluation.paper`, ``paper_comparison.csv``).
        perturb: robustness sweep specs, e.g. ``("jpeg:90,70", "blur:1,2")``; empty: no sweep
            (`mclcr_keras.evaluation.perturb`, ``robustness.csv``).
    """

    split: str = "test"
    batch_size: int = 32
    threshold: float | None = None
    threshold_criterion: str = "eer"
    threshold_records: str | None = None
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    compare_paper: bool = False
    perturb: tuple[str, ...] = ()

    def validate(self) -> None:
        """One-line `UsageError` for a bad value, before any work."""
        from mclcr_keras.metrics.threshold import THRESHOLD_CRITERIA

        checks = [
            (_is_int(self.batch_size) and self.batch_size >= 1,
             f"--batch-size must be a positive integer, got {self.batch_size!r}"),
            (self.threshold is None or 0.0 <= self.threshold <= 1.0,
             f"--threshold must be in [0, 1], got {self.threshold}"),
            (self.threshold_criterion in THRESHOLD_CRITERIA,
             f"--threshold-criterion must be one of {', '.join(THRESHOLD_CRITERIA)}, "
             f"got {self.threshold_criterion!r}"),
            (self.threshold is None or self.threshold_records is None,
             "--threshold-records chooses the threshold on its val split: leave out the fixed "
             "--threshold"),
            (_is_int(self.bootstrap) and self.bootstrap >= 0,
             f"--bootstrap must be an integer >= 0 (0 turns it off), got {self.bootstrap!r}"),
            (_is_int(self.bootstrap_seed) and self.bootstrap_seed >= 0,
             f"--bootstrap-seed must be an integer >= 0, got {self.bootstrap_seed!r}"),
            (isinstance(self.compare_paper, bool),
             f"compare_paper must be True or False, got {self.compare_paper!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.perturb:  # unknown names, severities out of range, H.264 without an encoder
            from mclcr_keras.evaluation import perturb

            perturb.check_available(perturb.parse_perturbations(self.perturb))

    def bootstrap_record(self) -> dict:
        """What ``metrics.json`` says about the intervals (``"bootstrap"``)."""
        return {"resamples": self.bootstrap, "seed": self.bootstrap_seed,
                "confidence": CONFIDENCE, "unit": "video", "stratified": True,
                "interval": "percentile"}


DEFAULTS = EvaluateOptions()

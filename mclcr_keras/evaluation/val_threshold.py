"""The decision threshold of ``evaluate``: chosen on the val split, or fixed by ``--threshold``.

By default the threshold is chosen (`mclcr_keras.metrics.choose_threshold`, ``--threshold-criterion
eer|balanced_acc``) on the frame scores of the ``val`` split of the first ``--records`` set, the
in-dataset set the model was trained on (Celeb-DF has no val split), or of ``--threshold-records
DIR``. The one value is applied at frame and video level to every evaluated record set; the val
scores are written to ``val_predictions.csv``. ``--threshold X`` fixes it instead (no val
scoring). `threshold_source` runs before the model loads, so a missing val split is a one-line
usage error and nothing is written to ``--out``.

Example:

>>> fixed_record(0.5)["criterion"], fixed_record(0.5)["split"]
('fixed', None)
>>> describe(fixed_record(0.5))
'threshold 0.5000 (fixed by --threshold)'
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mclcr_keras.data.splits import VAL as VAL_SPLIT
from mclcr_keras.errors import UsageError

logger = logging.getLogger(__name__)

VAL_PREDICTIONS_FILE = "val_predictions.csv"
FIXED_CRITERION = "fixed"  # metrics.json threshold.criterion of a --threshold given by the user

__all__ = ["FIXED_CRITERION", "VAL_PREDICTIONS_FILE", "VAL_SPLIT", "describe", "fixed_record",
           "resolve", "threshold_source"]


def _same(a: str, b: str) -> bool:
    return a == b or ("://" not in a and "://" not in b
                      and Path(a).resolve() == Path(b).resolve())


def _val_problem(records_dir: str) -> str | None:
    """What keeps ``<records_dir>/val`` from setting a threshold (None: nothing)."""
    import tensorflow as tf

    from mclcr_keras.data import schema
    from mclcr_keras.data.records import scan_shard

    if not tf.io.gfile.isdir(os.path.join(records_dir, VAL_SPLIT)):
        return f"no val split in {records_dir}"
    counts = {}
    for name in schema.LABEL_NAMES:
        shards = tf.io.gfile.glob(schema.shard_pattern(records_dir, VAL_SPLIT, name))
        counts[name] = sum(scan_shard(path) for path in shards)
    missing = [name for name, count in counts.items() if count == 0]
    if missing:
        return f"the val split of {records_dir} has no {' or '.join(missing)} frames"
    return None


def threshold_source(records: list[str], names: list[str], threshold: float | None,
                     threshold_records: str | None) -> tuple[str, str] | None:
    """``(path, name)`` of the record set whose val split sets the threshold, or None when
    ``threshold`` is fixed. Checked before the model loads.

    Raises:
        UsageError: that val split is missing or lacks a class (one line: what to pass instead).
    """
    if threshold is not None:
        return None
    path = str(threshold_records) if threshold_records is not None else records[0]
    if threshold_records is not None and "://" not in path and not Path(path).is_dir():
        raise UsageError(f"--threshold-records directory not found: {path}")
    problem = _val_problem(path)
    if problem:
        raise UsageError(f"{problem} to choose the threshold on: pass --threshold-records DIR "
                         "(a record set with a val split) or --threshold 0.5")
    name = next((n for r, n in zip(records, names) if _same(r, path)), Path(path).resolve().name)
    return path, name


def fixed_record(threshold: float) -> dict:
    """``metrics.json``'s ``threshold`` for a ``--threshold`` given by the user."""
    return {"value": float(threshold), "criterion": FIXED_CRITERION, "split": None,
            "records": None, "path": None, "n_frames": None, "n_real": None, "n_fake": None}


def resolve(scorer, source: tuple[str, str] | None, threshold: float | None, criterion: str, *,
            split: str, scored: dict, batch_size: int):
    """The threshold to apply: ``threshold`` when ``source`` is None, else chosen on the frames
    of the val split of ``source`` (scored here).

    Args:
        scorer: the loaded model (`mclcr_keras.inference.scorer.Scorer`).
        source: ``(path, name)`` from `threshold_source`, or None (fixed ``threshold``).
        threshold: the fixed threshold (used when ``source`` is None).
        criterion: ``"eer"`` or ``"balanced_acc"``.
        split: the evaluated split; with ``"val"`` the tables already scored are reused.
        scored: ``{name: predictions table}`` of the evaluated record sets.
        batch_size: frames per model call.

    Returns:
        ``(val_table, record)``: the val predictions (`report.PREDICTION_COLUMNS`; None for a
        fixed threshold) and ``metrics.json``'s ``threshold`` entry (its ``value`` is applied).
    """
    from mclcr_keras.evaluation.report import predict_records
    from mclcr_keras.metrics import choose_threshold

    if source is None:
        return None, fixed_record(threshold)
    path, name = source
    if split == VAL_SPLIT and name in scored:
        logger.warning("the threshold is chosen on the evaluated frames themselves (--split val): "
                       "ACC at it is optimistic")
        table = scored[name]
    else:
        table = predict_records(scorer, path, VAL_SPLIT, name, batch_size)
    labels = table["label"].to_numpy()
    value = choose_threshold(labels, table["probability"].to_numpy(), criterion)
    n_fake = int(labels.sum())
    record = {"value": value, "criterion": criterion, "split": VAL_SPLIT, "records": name,
              "path": str(path), "n_frames": int(labels.size), "n_real": int(labels.size - n_fake),
              "n_fake": n_fake}
    return table, record


def describe(record: dict) -> str:
    """One line for the console: the threshold and where it comes from."""
    if record["split"] is None:
        return f"threshold {record['value']:.4f} (fixed by --threshold)"
    return (f"threshold {record['value']:.4f} ({record['criterion']} on the {record['split']} "
            f"split of {record['records']}, {record['n_frames']} frames)")

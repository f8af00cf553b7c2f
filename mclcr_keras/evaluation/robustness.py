"""The robustness sweep of ``evaluate --perturb``: each record set re-scored once per perturbation
and severity, the crops perturbed after the pipeline's resize, before the model.

`robustness_table` scores ``<records>/<split>`` through `mclcr_keras.evaluation.report.
predict_records` with the `perturbed` transform, and evaluates each pass with
`mclcr_keras.evaluation.protocol.evaluate_predictions` (frame and video AUC with bootstrap
intervals, ACC at the report's threshold). The ``clean`` row of each record set is the plain
evaluation's own result. `write_sweep` writes ``robustness.csv`` and ``robustness.png``. The
perturbations are defined in `mclcr_keras.evaluation.perturb`; see ``docs/evaluation.md``.

Example:

>>> clean = {"frame": {"auc": 0.9, "auc_ci95": [0.8, 0.95], "acc": 0.85, "n": 64},
...          "video": {"auc": 0.95, "auc_ci95": None, "acc": 0.9}}
>>> row = result_row("ffpp", CLEAN, clean, 0.5)
>>> row["perturbation"], row["severity"], row["frame_auc_ci95_low"], row["video_auc_ci95_low"]
('clean', None, 0.8, nan)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mclcr_keras.evaluation import perturb, protocol
from mclcr_keras.evaluation.perturb import PERTURB_SEED, Perturbation
from mclcr_keras.viz.robustness import robustness_plot

logger = logging.getLogger(__name__)

ROBUSTNESS_FILE = "robustness.csv"
ROBUSTNESS_PLOT = "robustness.png"
CLEAN = Perturbation("clean", 0)
COLUMNS = ("records", "perturbation", "severity", "frame_auc", "frame_auc_ci95_low",
           "frame_auc_ci95_high", "video_auc", "video_auc_ci95_low", "video_auc_ci95_high", "acc",
           "video_acc", "threshold", "n_frames")

__all__ = ["CLEAN", "COLUMNS", "ROBUSTNESS_FILE", "ROBUSTNESS_PLOT", "by_video", "perturbed",
           "result_row", "robustness_table", "sweep_record", "write_sweep"]


def _text(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(values).tolist()]


def frame_keys(meta: Mapping) -> list[tuple]:
    """``(dataset, method, video_id, frame_index)`` of each frame of a batch's metadata."""
    columns = [_text(meta[key]) for key in ("dataset", "method", "video_id")]
    indices = np.asarray(meta["frame_index"]).astype(np.int64).tolist()
    return list(zip(*columns, indices))


def by_video(batches: Iterable[tuple]) -> Iterator[tuple]:
    """Regroups ``(images, labels, meta)`` batches (NumPy) into one element per video.

    A video is a run of consecutive frames with the same (dataset, method, video_id); records
    from ``build_records`` hold each video's frames together (a video never spans two shards).
    A video whose frames come back later is encoded in pieces, with a warning.
    """
    pending: list[tuple] = []
    key, finished = None, set()

    def emitted():
        images = np.concatenate([part[0] for part in pending])
        labels = np.concatenate([part[1] for part in pending])
        meta = {name: np.concatenate([part[2][name] for part in pending])
                for name in pending[0][2]}
        return images, labels, meta

    for images, labels, meta in batches:
        keys = [k[:3] for k in frame_keys(meta)]
        start = 0
        for stop in range(1, len(keys) + 1):
            if stop < len(keys) and keys[stop] == keys[start]:
                continue
            if keys[start] != key:
                if pending:
                    finished.add(key)
                    yield emitted()
                if keys[start] in finished:
                    logger.warning("video %s: its frames are not contiguous in the records; "
                                   "encoded in pieces", "/".join(keys[start]))
                pending, key = [], keys[start]
            pending.append((images[start:stop], labels[start:stop],
                            {name: value[start:stop] for name, value in meta.items()}))
            start = stop
    if pending:
        yield emitted()


def perturbed(perturbation: Perturbation, seed: int = PERTURB_SEED) -> Callable:
    """The `predict_records` transform that applies ``perturbation`` to every crop.

    It maps the pipeline's ``(images, labels, meta)`` batches to NumPy batches of perturbed
    images; a sequence perturbation (H.264) gets one element per video, its frames encoded in
    ``frame_index`` order and returned in the records' order.
    """

    def transform(batches: Iterable[tuple]) -> Iterator[tuple]:
        arrays = ((np.asarray(images), np.asarray(labels),
                   {name: np.asarray(value) for name, value in meta.items()})
                  for images, labels, meta in batches)
        if perturbation.name in perturb.SEQUENCE_PERTURBATIONS:
            arrays = by_video(arrays)
        for images, labels, meta in arrays:
            keys = frame_keys(meta)
            if perturbation.name in perturb.SEQUENCE_PERTURBATIONS:
                order = np.argsort(np.asarray(meta["frame_index"]), kind="stable")
                out = np.empty(images.shape, np.float32)
                out[order] = perturb.apply(images[order], perturbation, seed=seed)
            else:
                out = perturb.apply(images, perturbation, keys=keys, seed=seed)
            yield out, labels, meta

    return transform


def result_row(name: str, perturbation: Perturbation, result: Mapping, threshold: float) -> dict:
    """One row of ``robustness.csv`` from an `evaluate_predictions` result."""
    frame, video = result["frame"], result["video"]
    return {
        "records": name,
        "perturbation": perturbation.name,
        "severity": None if perturbation == CLEAN else perturbation.severity,
        **protocol.auc_columns(result),
        "acc": frame["acc"],
        "video_acc": video["acc"],
        "threshold": threshold,
        "n_frames": frame["n"],
    }


def robustness_table(scorer, records: Mapping[str, str | os.PathLike], split: str,
                     perturbations: Sequence[Perturbation], *, clean: Mapping[str, Mapping],
                     threshold: float, bootstrap: int, bootstrap_seed: int, batch_size: int,
                     seed: int = PERTURB_SEED) -> pd.DataFrame:
    """The rows of ``robustness.csv``: per record set, its clean row, then one per severity.

    Args:
        scorer: a loaded `mclcr_keras.inference.scorer.Scorer`.
        records: ``{name: record set root}``, in report order.
        split: the split evaluated.
        perturbations: from `mclcr_keras.evaluation.perturb.parse_perturbations`.
        clean: ``{name: evaluate_predictions(...)}`` of the plain evaluation (the clean rows).
        threshold: decision threshold of ACC (the report's).
        bootstrap: resamples of the AUC intervals (0: none); bootstrap_seed: their seed.
        batch_size: frames per model call.
        seed: base seed of the per-frame noise.

    Returns:
        A DataFrame with `COLUMNS`; ``severity`` is empty (NaN) in the clean rows.
    """
    from mclcr_keras.evaluation.report import predict_records

    rows = []
    for name, records_dir in records.items():
        rows.append(result_row(name, CLEAN, clean[name], threshold))
        for perturbation in perturbations:
            logger.info("%s/%s: scoring under %s", name, split, perturbation.label)
            table = predict_records(scorer, records_dir, split, f"{name} {perturbation.label}",
                                    batch_size, transform=perturbed(perturbation, seed))
            result = protocol.evaluate_predictions(table, threshold, bootstrap=bootstrap,
                                                   seed=bootstrap_seed)
            rows.append(result_row(name, perturbation, result, threshold))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def sweep_record(specs: Sequence[str], seed: int = PERTURB_SEED) -> dict:
    """What ``metrics.json`` says about the sweep: the specs, the noise seed, the encoders."""
    perturbations = perturb.parse_perturbations(specs)
    return {"perturb": list(specs), "seed": seed, "encoders": perturb.encoders(perturbations),
            "file": ROBUSTNESS_FILE}


def _severity_text(value) -> str:
    """``90`` for a JPEG quality, ``0.25`` for a factor, empty for the clean row."""
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_sweep(scorer, records: Mapping[str, str | os.PathLike], split: str,
                specs: Sequence[str], out: str | os.PathLike, **options) -> pd.DataFrame:
    """Runs `robustness_table` (``options``: its keyword arguments) and writes
    ``robustness.csv`` and ``robustness.png`` into ``out``; returns the table."""
    perturbations = perturb.parse_perturbations(specs)
    perturb.check_available(perturbations)
    table = robustness_table(scorer, records, split, perturbations, **options)
    out = Path(out)
    written = table.assign(severity=[_severity_text(value) for value in table["severity"]])
    written.to_csv(out / ROBUSTNESS_FILE, index=False)
    robustness_plot(table, out / ROBUSTNESS_PLOT, axis_labels=perturb.AXIS_LABELS,
                    reversed_axes=perturb.MILDER_WHEN_HIGHER,
                    title=f"AUC under perturbation ({split})")
    return table

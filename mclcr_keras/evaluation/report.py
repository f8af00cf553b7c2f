"""Evaluate a trained model on one or several record sets (the field's protocol).

`evaluate(model, records, out)` (``python -m mclcr_keras.evaluate``) scores every frame and writes
the report files.

`--model` is a `.keras` file or an exported SavedModel (`serving/mclcr` or `serving/mclcr/3`);
the image size is read from the model, records stored at another size are resized by the pipeline.
Every frame of `<records>/<split>/` is scored once, in a deterministic order. Outputs in `--out`:

- `predictions.csv`: one row per frame: records, dataset, method, video_id, frame_index, label,
  probability, logit;
- `val_predictions.csv`: the same for the val frames the threshold was chosen on (not with a
  fixed `--threshold`; `mclcr_keras.evaluation.val_threshold`);
- `metrics.json`: per record set, frame ACC/AUC/EER/AP, video AUC/ACC (mean frame probability per
  (dataset, method, video_id)), per-method AUC against the real samples, per dataset
  (`mclcr_keras.evaluation.protocol.evaluate_predictions`), frame Brier score and ECE, bootstrap
  95% intervals of frame and video AUC (stratified video resamples), the reliability bins, and
  the cross-dataset rows; NaN is written `null`;
- `roc.png`: one frame-level ROC curve per record set;
- `reliability.png`: the reliability diagram (fake fraction against mean probability per ECE
  bin) with the frames per bin, one curve per record set;
- `cross_dataset.csv` (several record sets): one row per set; the table is printed in any case;
- `robustness.csv`, `robustness.png` (``--perturb``): the AUCs under each perturbation and
  severity (`mclcr_keras.evaluation.robustness`);
- `model_card.json`, `model_card.md`: the model card (`mclcr_keras.evaluation.model_card`);
- `paper_comparison.csv` (``compare_paper``): each run number beside the paper's Tables 3-6
  (`mclcr_keras.evaluation.paper`; also the ``"paper"`` entry of ``metrics.json``).

`--split` defaults to `test`: model selection uses `val` during training (`mclcr_keras.training`),
never this tool's test numbers. See `docs/evaluation.md`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mclcr_keras.data import pipeline
from mclcr_keras.data.records import count_records, list_shards
from mclcr_keras.evaluation import paper, protocol, robustness, val_threshold
from mclcr_keras.evaluation.model_card import CARD_JSON, CARD_MARKDOWN, write_model_card
from mclcr_keras.evaluation.options import DEFAULTS, EvaluateOptions
from mclcr_keras.evaluation.provenance import provenance
from mclcr_keras.files import write_json
from mclcr_keras.inference.scorer import load_scorer
from mclcr_keras.metrics import ECE_BINS, reliability_bins
from mclcr_keras.viz.reliability import reliability_plot
from mclcr_keras.viz.roc import roc_curve_plot

logger = logging.getLogger(__name__)

# predictions.csv: the protocol's columns, with the record set first and the logit last.
PREDICTION_COLUMNS = ("records", *protocol.PREDICTION_COLUMNS, "logit")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ROC_FILE = "roc.png"
RELIABILITY_FILE = "reliability.png"
CROSS_DATASET_FILE = "cross_dataset.csv"
TABLE_FLOAT_COLUMNS = protocol.TABLE_COLUMNS

__all__ = ["PREDICTION_COLUMNS", "evaluate", "format_table", "predict_records", "written_files"]


def _text(values) -> list[str]:
    return [v.decode("utf-8") for v in np.asarray(values).tolist()]


def predict_records(scorer, records_dir: str | os.PathLike, split: str, name: str,
                    batch_size: int = 32, transform=None) -> pd.DataFrame:
    """Scores every frame of `<records_dir>/<split>` with `scorer`; one row per frame.

    Args:
        scorer: a `mclcr_keras.inference.scorer.Scorer` (its `image_size` sets the decoding size).
        records_dir: root of a record set (holds `<split>/real-*.tfrecord`, `fake-*`).
        split: split directory to read, e.g. `"test"`.
        name: value of the `records` column.
        batch_size: frames per model call.
        transform: None, or a function from the iterator of ``(images, labels, meta)`` batches
            to another (e.g. perturbed crops, `mclcr_keras.evaluation.robustness.perturbed`).

    Returns:
        A DataFrame with `PREDICTION_COLUMNS`, in the pipeline's deterministic order.

    Example:

    ```python
    df = predict_records(load_scorer("best.keras"), "records/ffpp", "test", "ffpp")
    ```
    """
    from tqdm.auto import tqdm

    total = sum(count_records(records_dir, split).values())
    dataset = pipeline.make_dataset(
        records_dir, split, batch_size=batch_size, training=False,
        image_size=scorer.image_size, with_metadata=True,
    )
    columns: dict[str, list] = {key: [] for key in PREDICTION_COLUMNS if key != "records"}
    with tqdm(total=total, desc=f"{name}/{split}", unit="frame", disable=None) as bar:
        for images, labels, meta in (dataset if transform is None else transform(dataset)):
            probability, logit = scorer.predict(images, batch_size=batch_size)
            columns["dataset"] += _text(meta["dataset"])
            columns["method"] += _text(meta["method"])
            columns["video_id"] += _text(meta["video_id"])
            columns["frame_index"] += np.asarray(meta["frame_index"]).tolist()
            columns["label"] += np.asarray(labels).astype(np.int64).tolist()
            columns["probability"] += probability.astype(np.float64).tolist()
            columns["logit"] += logit.astype(np.float64).tolist()
            bar.update(len(probability))
    df = pd.DataFrame(columns)
    df.insert(0, "records", name)
    return df


def _json_ready(value):
    """NaN/inf -> None (strict JSON), NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(
    model: str | os.PathLike,
    records: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    split: str = DEFAULTS.split,
    names: Sequence[str] | None = None,
    batch_size: int = DEFAULTS.batch_size,
    threshold: float | None = DEFAULTS.threshold,
    threshold_criterion: str = DEFAULTS.threshold_criterion,
    threshold_records: str | os.PathLike | None = DEFAULTS.threshold_records,
    bootstrap: int = DEFAULTS.bootstrap,
    bootstrap_seed: int = DEFAULTS.bootstrap_seed,
    perturb: Sequence[str] = DEFAULTS.perturb,
    compare_paper: bool = DEFAULTS.compare_paper,
) -> dict:
    """Scores each record set, writes the report files to `out` and returns the metrics dict.

    Args:
        model: `.keras` file or exported SavedModel (see `mclcr_keras.inference.load_scorer`).
        records: one or more record set roots.
        out: output directory (created).
        split: split to evaluate; `"test"` by default (never select models on it).
        names: one name per record set; default: the directories' base names.
        batch_size: frames per model call.
        threshold: decision threshold of frame and video ACC; None: chosen on a val split
            (`mclcr_keras.evaluation.val_threshold`, scores in ``val_predictions.csv``).
        threshold_criterion: ``"eer"`` or ``"balanced_acc"``, when the threshold is chosen.
        threshold_records: record set whose val split sets it (default: ``records[0]``).
        bootstrap: stratified video resamples of the 95% AUC intervals; 0 turns them off.
        bootstrap_seed: seed of the resamples.
        perturb: robustness sweep specs, e.g. ``["jpeg:90,70", "blur:1,2"]``: each record set
            is scored again per severity (``robustness.csv``, `mclcr_keras.evaluation.robustness`).
        compare_paper: put the run beside the paper's Tables 3-6 (`mclcr_keras.evaluation.paper`);
            records that match no table raise `UsageError` before the model loads.

    Returns:
        The content of `metrics.json` (before NaN -> null).

    Raises:
        UsageError: a bad option value (`EvaluateOptions.validate`).
        FileNotFoundError: missing model, records directory or split.
        ValueError: bad names, or an unloadable model.

    Example:

    ```python
    metrics = evaluate("best.keras", ["records/ffpp", "records/celebdf"], "eval")
    metrics["records"]["celebdf"]["video"]["auc"]   # the cross-dataset video AUC
    ```
    """
    if threshold_records is not None:
        threshold_records = str(threshold_records)
    options = EvaluateOptions(split=split, batch_size=batch_size, threshold=threshold,
                              threshold_criterion=threshold_criterion,
                              threshold_records=threshold_records,
                              bootstrap=bootstrap, bootstrap_seed=bootstrap_seed,
                              perturb=tuple(perturb), compare_paper=compare_paper)
    options.validate()
    records = [str(r) for r in records]
    if not records:
        raise ValueError("give at least one --records directory")
    if names is None or len(names) == 0:
        names = [Path(r).resolve().name for r in records]
        if len(set(names)) != len(names):
            raise ValueError(
                f"record sets share a directory name ({names}); name them with --name"
            )
    names = [str(n) for n in names]
    if len(names) != len(records):
        raise ValueError(f"got {len(names)} --name for {len(records)} --records")
    if len(set(names)) != len(names):
        raise ValueError(f"--name values must be unique, got {names}")
    for records_dir in records:
        if not Path(records_dir).is_dir():
            raise FileNotFoundError(f"records directory not found: {records_dir}")
        list_shards(records_dir, split)  # a missing split fails before the model loads
    source = val_threshold.threshold_source(records, names, threshold, threshold_records)
    if split != "test":
        logger.warning("evaluating split %r: report test numbers; select models on val only", split)

    planned = paper.plan(records, model, split) if compare_paper else None
    scorer = load_scorer(model)
    tables = [
        predict_records(scorer, records_dir, split, name, batch_size)
        for records_dir, name in zip(records, names)
    ]
    val_table, threshold_record = val_threshold.resolve(
        scorer, source, threshold, threshold_criterion, split=split,
        scored=dict(zip(names, tables)), batch_size=batch_size)
    threshold = threshold_record["value"]
    results = {
        name: protocol.evaluate_predictions(table, threshold, bootstrap=bootstrap,
                                            seed=bootstrap_seed)
        for name, table in zip(names, tables)
    }
    bins = {name: reliability_bins(table["label"].to_numpy(), table["probability"].to_numpy())
            for name, table in zip(names, tables)}
    cross = protocol.cross_dataset_table(results)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat(tables, ignore_index=True)
    predictions.to_csv(out / PREDICTIONS_FILE, index=False)
    if val_table is not None:
        val_table.to_csv(out / val_threshold.VAL_PREDICTIONS_FILE, index=False)
    report = {
        "model": str(model),
        "model_format": scorer.kind,
        "image_size": scorer.image_size,
        "split": split,
        "threshold": threshold_record,
        "bootstrap": options.bootstrap_record(),
        "calibration": {"ece_bins": ECE_BINS},
        "records": {
            name: {"path": str(records_dir), **results[name], "reliability": bins[name]}
            for records_dir, name in zip(records, names)
        },
        "cross_dataset": {name: row for name, row in cross.to_dict(orient="index").items()},
        "provenance": provenance(scorer, dict(zip(names, records))),
        **({"robustness": robustness.sweep_record(options.perturb)} if options.perturb else {}),
    }
    if planned is not None:
        rows = paper.compare(planned, names, results)
        report["paper"] = paper.section(rows, planned, records,
                                        report["provenance"]["model"]["variant"])
        paper.write_comparison(rows, out / paper.COMPARISON_FILE)
    write_json(out / METRICS_FILE, _json_ready(report), allow_nan=False)
    write_model_card(_json_ready(report), out)
    curves = {
        f"{name} ({split})": (table["label"].to_numpy(), table["probability"].to_numpy())
        for name, table in zip(names, tables)
    }
    roc_curve_plot(curves, out / ROC_FILE, title=f"ROC, frame level ({split})")
    reliability_plot(
        {f"{name} ({split})": {**bins[name], "ece": results[name]["frame"]["ece"]}
         for name in names},
        out / RELIABILITY_FILE, title=f"Reliability, frame level ({split})",
    )
    if len(records) > 1:
        cross.to_csv(out / CROSS_DATASET_FILE)
    if options.perturb:  # the robustness sweep, at the same threshold as ACC above
        robustness.write_sweep(scorer, dict(zip(names, records)), split, options.perturb, out,
                               clean=results, threshold=threshold, bootstrap=bootstrap,
                               bootstrap_seed=bootstrap_seed, batch_size=batch_size)
    return report


def _number(value) -> str:
    return "nan" if pd.isna(value) else f"{value:.4f}"


def format_table(table: pd.DataFrame) -> str:
    """The cross-dataset table as printed: 4 decimals, each AUC's interval as ``[low, high]``
    (``-`` without bootstrap)."""
    shown = table.copy()
    for level in ("frame", "video"):
        low, high = shown.pop(f"{level}_auc_ci95_low"), shown.pop(f"{level}_auc_ci95_high")
        interval = [("-" if pd.isna(lo) or pd.isna(hi) else f"[{lo:.4f}, {hi:.4f}]")
                    for lo, hi in zip(low, high)]
        shown.insert(shown.columns.get_loc(f"{level}_auc") + 1, f"{level}_auc_ci95", interval)
    for column in TABLE_FLOAT_COLUMNS:
        if column in shown:
            shown[column] = shown[column].map(_number)
    return shown.to_string()


def written_files(out: str | os.PathLike, record_sets: int, *,
                  val_scored: bool = False, perturb: bool = False,
                  compare_paper: bool = False) -> list[Path]:
    """The files `evaluate` writes into ``out`` for ``record_sets`` record sets (with
    ``val_predictions.csv`` when a val split was scored for the threshold, and the robustness
    table and plot with ``--perturb``; the model card always, ``paper_comparison.csv`` with
    ``--compare-paper``)."""
    names = [METRICS_FILE, PREDICTIONS_FILE, ROC_FILE, RELIABILITY_FILE, CARD_JSON, CARD_MARKDOWN]
    if val_scored:
        names.insert(2, val_threshold.VAL_PREDICTIONS_FILE)
    if record_sets > 1:
        names.append(CROSS_DATASET_FILE)
    if perturb:
        names += [robustness.ROBUSTNESS_FILE, robustness.ROBUSTNESS_PLOT]
    if compare_paper:
        names.append(paper.COMPARISON_FILE)
    return [Path(out) / name for name in names]

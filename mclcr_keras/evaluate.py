"""Evaluate a trained model on one or several record sets (the field's protocol).

    python -m mclcr_keras.evaluate --model runs/ffpp/best.keras \\
        --records records/ffpp --records records/celebdf --split test --out runs/ffpp/eval

`--model` is a `.keras` file or an exported SavedModel (`serving/mclcr` or `serving/mclcr/3`);
the image size is read from the model, records stored at another size are resized by the pipeline.
Every frame of `<records>/<split>/` is scored once, in a deterministic order. Outputs in `--out`:

- `predictions.csv`: one row per frame: records, dataset, method, video_id, frame_index, label,
  probability, logit;
- `metrics.json`: per record set, frame ACC/AUC/EER/AP, video AUC/ACC (mean frame probability per
  (dataset, method, video_id)), per-method AUC against the real samples, per dataset
  (`mclcr_keras.metrics.evaluate_predictions`), and the cross-dataset rows; NaN is written `null`;
- `roc.png`: one frame-level ROC curve per record set;
- `cross_dataset.csv` (several record sets): one row per set; the table is printed in any case.

`--split` defaults to `test`: model selection uses `val` during training (`train.py`), never this
tool's test numbers. See `docs/evaluation.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

EXIT_ERROR = 2
PREDICTION_COLUMNS = (
    "records", "dataset", "method", "video_id", "frame_index", "label", "probability", "logit",
)

__all__ = ["PREDICTION_COLUMNS", "evaluate", "main", "predict_records"]


def _text(values) -> list[str]:
    return [v.decode("utf-8") for v in np.asarray(values).tolist()]


def predict_records(scorer, records_dir: str | os.PathLike, split: str, name: str,
                    batch_size: int = 32) -> pd.DataFrame:
    """Scores every frame of `<records_dir>/<split>` with `scorer`; one row per frame.

    Args:
        scorer: a `mclcr_keras.serving.Scorer` (its `image_size` sets the decoding size).
        records_dir: root of a record set (holds `<split>/real-*.tfrecord`, `fake-*`).
        split: split directory to read, e.g. `"test"`.
        name: value of the `records` column.
        batch_size: frames per model call.

    Returns:
        A DataFrame with `PREDICTION_COLUMNS`, in the pipeline's deterministic order.

    Example:

    >>> df = predict_records(load_scorer("best.keras"), "records/ffpp", "test", "ffpp")
    """
    from tqdm.auto import tqdm

    from mclcr_keras.data import pipeline

    total = sum(pipeline.count_records(records_dir, split).values())
    dataset = pipeline.make_dataset(
        records_dir, split, batch_size=batch_size, training=False,
        image_size=scorer.image_size, with_metadata=True,
    )
    columns: dict[str, list] = {key: [] for key in PREDICTION_COLUMNS if key != "records"}
    with tqdm(total=total, desc=f"{name}/{split}", unit="frame", disable=None) as bar:
        for images, labels, meta in dataset:
            probability, logit = scorer.predict(images, batch_size=batch_size)
            columns["dataset"] += _text(meta["dataset"])
            columns["method"] += _text(meta["method"])
            columns["video_id"] += _text(meta["video_id"])
            columns["frame_index"] += meta["frame_index"].numpy().tolist()
            columns["label"] += labels.numpy().astype(np.int64).tolist()
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
    split: str = "test",
    names: Sequence[str] | None = None,
    batch_size: int = 32,
    threshold: float = 0.5,
) -> dict:
    """Scores each record set, writes the report files to `out` and returns the metrics dict.

    Args:
        model: `.keras` file or exported SavedModel (see `mclcr_keras.serving.load_scorer`).
        records: one or more record set roots.
        out: output directory (created).
        split: split to evaluate; `"test"` by default (never select models on it).
        names: one name per record set; default: the directories' base names.
        batch_size: frames per model call.
        threshold: decision threshold of frame and video ACC.

    Returns:
        The content of `metrics.json` (before NaN -> null).

    Raises:
        FileNotFoundError: missing model, records directory or split.
        ValueError: bad arguments, or an unloadable model.

    Example:

    >>> metrics = evaluate("best.keras", ["records/ffpp", "records/celebdf"], "eval")
    >>> metrics["records"]["celebdf"]["video"]["auc"]
    """
    from mclcr_keras import metrics as metrics_lib
    from mclcr_keras import plots, serving
    from mclcr_keras.data import pipeline

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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    for records_dir in records:
        if not Path(records_dir).is_dir():
            raise FileNotFoundError(f"records directory not found: {records_dir}")
        pipeline.list_shards(records_dir, split)  # a missing split fails before the model loads
    if split != "test":
        logger.warning("evaluating split %r: report test numbers; select models on val only", split)

    scorer = serving.load_scorer(model)
    tables = [
        predict_records(scorer, records_dir, split, name, batch_size)
        for records_dir, name in zip(records, names)
    ]
    results = {
        name: metrics_lib.evaluate_predictions(table, threshold)
        for name, table in zip(names, tables)
    }
    cross = metrics_lib.cross_dataset_table(results)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat(tables, ignore_index=True)
    predictions.to_csv(out / "predictions.csv", index=False)
    report = {
        "model": str(model),
        "model_format": scorer.kind,
        "image_size": scorer.image_size,
        "split": split,
        "threshold": threshold,
        "records": {
            name: {"path": str(records_dir), **results[name]}
            for records_dir, name in zip(records, names)
        },
        "cross_dataset": {name: row for name, row in cross.to_dict(orient="index").items()},
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(_json_ready(report), f, indent=2, allow_nan=False)
    curves = {
        f"{name} ({split})": (table["label"].to_numpy(), table["probability"].to_numpy())
        for name, table in zip(names, tables)
    }
    plots.roc_curve_plot(curves, out / "roc.png", title=f"ROC, frame level ({split})")
    if len(records) > 1:
        cross.to_csv(out / "cross_dataset.csv")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mclcr_keras.evaluate",
        description=(
            "Score every frame of a split of one or several record sets and write metrics.json "
            "(frame ACC/AUC/EER/AP, video AUC/ACC, per-method AUC), predictions.csv (one row per "
            "frame), roc.png, and with several --records a cross-dataset table "
            "(cross_dataset.csv). See docs/evaluation.md."
        ),
    )
    parser.add_argument(
        "--model", required=True,
        help="a .keras file or an exported SavedModel (serving/mclcr or serving/mclcr/<version>)",
    )
    parser.add_argument(
        "--records", required=True, action="extend", nargs="+", metavar="DIR",
        help="record set root(s) from build_records; repeat (or list several) for a "
             "cross-dataset table, e.g. --records records/ffpp --records records/celebdf",
    )
    parser.add_argument(
        "--split", default="test",
        help="split to evaluate (default: test). Select checkpoints on val, during training",
    )
    parser.add_argument("--out", required=True, help="output directory for the report files")
    parser.add_argument(
        "--name", action="extend", nargs="+", default=None, metavar="NAME",
        help="one display name per --records, in order (default: the directory names)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="frames per model call")
    parser.add_argument(
        "--threshold", type=float, default=0.5,
        help="probability above which a frame/video counts as fake, for ACC (default 0.5)",
    )
    return parser


def _format_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("frame_auc", "video_auc", "eer", "ap", "acc"):
        shown[column] = shown[column].map(lambda v: "nan" if pd.isna(v) else f"{v:.4f}")
    return shown.to_string()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m mclcr_keras.evaluate`; returns the exit status."""
    args = build_parser().parse_args(argv)
    import tensorflow as tf  # after parsing: --help stays instant
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = evaluate(
            args.model, args.records, args.out, split=args.split, names=args.name,
            batch_size=args.batch_size, threshold=args.threshold,
        )
    except (FileNotFoundError, ValueError, OSError, tf.errors.OpError) as error:
        message = (str(error).strip() or type(error).__name__).splitlines()[0]
        print(f"evaluate: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.split} split, model {args.model}:")
    table = pd.DataFrame.from_dict(report["cross_dataset"], orient="index").rename_axis("name")
    print(_format_table(table))
    out = Path(args.out)
    written = ["metrics.json", "predictions.csv", "roc.png"]
    if len(args.records) > 1:
        written.append("cross_dataset.csv")
    print("wrote " + ", ".join(str(out / name) for name in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

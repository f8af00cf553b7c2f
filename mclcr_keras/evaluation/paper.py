"""The paper's numbers (Wang et al. 2022, Tables 3-6) beside a run (``evaluate --compare-paper``).

``paper_results.csv`` ships with the package: one row per (table, train, test, model, metric),
values in percent, copied from the paper's text. Each record set is matched to the paper's
tables by its ``dataset.json`` (what ``build_records`` converted), and the rows by the model's
variant:

| record set (``dataset.json``)                      | table | run value                   |
|----------------------------------------------------|-------|-----------------------------|
| ``ffpp``, ``c40``, one of the four methods          | 3     | frame ACC, frame AUC        |
| ``ffpp``, ``c23`` or ``c40``, the four methods      | 5     | frame ACC, frame AUC        |
| the same                                            | 4     | per-method Deepfakes AUC    |
| ``celebdf`` (its test list)                         | 4, 6  | frame AUC                   |

Table 3 trains one model per method; Tables 4-6 train one model on the four methods. Only rows of
the paper's own model map to a variant (`PAPER_MODELS`); the methods it quotes (Xception [16],
SPSL, F3-Net, ...) were trained by others and are not this package's ``baseline``. Run values are
converted to percent; ``difference`` is run - paper, in percentage points.

Example:

>>> rows = paper_rows()
>>> [(r["table"], r["model"], r["metric"], r["value"]) for r in rows
...  if r["table"] == 5 and r["model"] == "mclcr" and "c40" in r["train"]]
[(5, 'mclcr', 'frame_acc', 88.07), (5, 'mclcr', 'frame_auc', 90.28)]
>>> [(r["table"], r["model"], r["value"]) for r in
...  match_rows({"source": "ffpp", "compression": "c40", "methods": ["NeuralTextures"]}, "mclcr")]
[(3, 'MC-LCR', 82.13), (3, 'MC-LCR', 87.39)]
>>> match_rows({"source": "folder"}, "mclcr")
Traceback (most recent call last):
...
ValueError: source folder: the paper tests FF++ and Celeb-DF v2 only
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mclcr_keras.data.sources.ffpp import FFPP_DEFAULT_METHODS
from mclcr_keras.data.writer.tables import DATASET_JSON
from mclcr_keras.errors import UsageError
from mclcr_keras.evaluation.provenance import stored_config

logger = logging.getLogger(__name__)

PAPER_FILE = "paper_results.csv"
COMPARISON_FILE = "paper_comparison.csv"
COLUMNS = ("records", "table", "train", "test", "model", "metric", "paper", "run", "difference")
# The paper's names of its own model and ablations -> the package's variants (models.config):
# "Ours" of Tables 3-4, and Table 5-6's "Baseline" (Xception w/o SSRB, PAPDA and SC loss),
# "w/o SSRB", "w/o PAPDA", "w/o SC loss" (alpha = 0) and "Ours (MC-LCR)".
PAPER_MODELS = {"MC-LCR": "mclcr", "mclcr": "mclcr", "baseline": "baseline",
                "no_ssrb": "no_ssrb", "no_papda": "no_papda", "no_supcon": "no_supcon"}
CELEBDF_TEST = "Celeb-DF v2 test list"
FFPP_DEEPFAKES_TEST = "FF++ Deepfakes"  # Table 4's in-dataset column (trained on 4 methods)
TABLE3_COMPRESSION = "c40"
TABLE5_COMPRESSIONS = ("c23", "c40")
WHAT_TO_PASS = (
    "pass FF++ c40 records of one method (Table 3: build_records ffpp --compression c40 --methods "
    "Deepfakes), FF++ c23/c40 records of the four methods (Table 5) or Celeb-DF v2 records "
    "(Tables 4, 6), or drop --compare-paper")

__all__ = ["COLUMNS", "COMPARISON_FILE", "PAPER_FILE", "PAPER_MODELS", "compare",
           "format_comparison", "match_rows", "paper_rows", "plan", "records_protocol", "section",
           "write_comparison"]


def paper_rows() -> list[dict]:
    """The shipped ``paper_results.csv``: dicts of table (int), train, test, model, metric and
    value (float, percent)."""
    text = importlib.resources.files(__package__).joinpath(PAPER_FILE).read_text("utf-8")
    return [dict(row, table=int(row["table"]), value=float(row["value"]))
            for row in csv.DictReader(text.splitlines())]


def records_protocol(records_dir: str | os.PathLike) -> dict:
    """What a record set holds, from its ``dataset.json``: ``source``, ``compression``,
    ``methods`` (FF++ only; the ``--methods`` it was built with); ``{}`` without the file."""
    path = Path(records_dir) / DATASET_JSON
    try:
        arguments = json.loads(path.read_text()).get("arguments", {})
    except (OSError, ValueError):
        return {}
    methods = arguments.get("methods") or ""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    return {"source": arguments.get("source"), "compression": arguments.get("compression"),
            "methods": list(methods)}


def _table_filters(protocol: Mapping) -> list[dict]:
    """The paper rows (as filters on their columns) a record set's protocol matches; raises
    ValueError saying why none."""
    source = protocol.get("source")
    if source is None:
        raise ValueError(f"no readable {DATASET_JSON}, so its dataset is unknown")
    if source == "celebdf":
        return [{"table": 4, "test": CELEBDF_TEST}, {"table": 6, "test": CELEBDF_TEST}]
    if source != "ffpp":
        raise ValueError(f"source {source}: the paper tests FF++ and Celeb-DF v2 only")
    compression, methods = protocol.get("compression"), list(protocol.get("methods") or [])
    if sorted(methods) == sorted(FFPP_DEFAULT_METHODS):
        if compression not in TABLE5_COMPRESSIONS:
            raise ValueError(f"FF++ {compression}: Table 5 is c23 and c40 only")
        return [{"table": 5, "train": f"FF++ {compression} (4 methods)"},
                {"table": 4, "test": FFPP_DEEPFAKES_TEST}]
    if len(methods) == 1 and methods[0] in FFPP_DEFAULT_METHODS:
        if compression != TABLE3_COMPRESSION:
            raise ValueError(f"FF++ {compression} {methods[0]}: Table 3 (one method) is c40 only")
        return [{"table": 3, "train": f"FF++ c40 {methods[0]}"}]
    raise ValueError(f"FF++ methods {','.join(methods)}: the paper uses one of, or all of, "
                     f"{','.join(FFPP_DEFAULT_METHODS)}")


def match_rows(protocol: Mapping, variant: str | None, rows: Sequence[dict] | None = None
               ) -> list[dict]:
    """The paper rows of a record set (`records_protocol`) for a model of ``variant``.

    Raises:
        ValueError: no table matches the record set, or none of its rows is of that variant
            (the message says which).
    """
    rows = paper_rows() if rows is None else rows
    filters = _table_filters(protocol)
    tables = [r for r in rows if any(all(r[k] == v for k, v in f.items()) for f in filters)]
    found = sorted((r for r in tables if PAPER_MODELS.get(r["model"]) == variant),
                   key=lambda r: r["table"])
    if not found:
        numbers = sorted({r["table"] for r in tables})
        ours = sorted({PAPER_MODELS[r["model"]] for r in tables if r["model"] in PAPER_MODELS})
        raise ValueError(f"Table {', '.join(map(str, numbers))} has no row of variant {variant} "
                         f"(its variants: {', '.join(ours)})")
    return found


def plan(records: Sequence[str | os.PathLike], model: str | os.PathLike, split: str
         ) -> list[list[dict]]:
    """The paper rows of each record set, checked before the model loads (``--compare-paper``).

    Returns:
        One list of paper rows per record set, in order (empty for a set no table matches; a
        warning names it).

    Raises:
        UsageError: not the test split, no readable variant, or no record set matches a table
            (one line: what is wrong and what to pass instead).
    """
    if split != "test":
        raise UsageError(f"--compare-paper compares test numbers with the paper's; got --split "
                         f"{split}: drop --split or --compare-paper")
    variant = (stored_config(model) or {}).get("variant")
    if variant is None:
        raise UsageError(f"--compare-paper: {model} records no MC-LCR variant (a .keras model or "
                         "an export of this package); drop --compare-paper")
    rows, planned, reasons = paper_rows(), [], []
    for records_dir in records:
        try:
            planned.append(match_rows(records_protocol(records_dir), variant, rows))
        except ValueError as error:
            planned.append([])
            reasons.append(f"{records_dir}: {error}")
    if not any(planned):
        raise UsageError(f"--compare-paper: no table of the paper matches ({'; '.join(reasons)}); "
                         f"{WHAT_TO_PASS}")
    for reason in reasons:
        logger.warning("--compare-paper: no paper row for %s", reason)
    return planned


def _run_value(row: Mapping, result: Mapping) -> float | None:
    """The run's number (percent) for a paper row, from one record set's metrics."""
    if row["test"] == FFPP_DEEPFAKES_TEST:
        value = (result.get("per_method") or {}).get("Deepfakes", {}).get("frame_auc")
    elif row["metric"] == "frame_acc":  # the paper's ACC: a fixed 0.5 cut
        frame = result["frame"]
        value = frame.get("acc_at_0.5", frame.get("acc"))
    else:
        value = result["frame"][row["metric"].removeprefix("frame_")]
    if value is None or not math.isfinite(float(value)):
        return None
    return 100.0 * float(value)


def compare(planned: Sequence[Sequence[dict]], names: Sequence[str],
            results: Mapping[str, Mapping]) -> list[dict]:
    """Rows of ``paper_comparison.csv`` (`COLUMNS`): each paper row beside the run's number."""
    out = []
    for name, rows in zip(names, planned):
        for row in rows:
            run = _run_value(row, results[name])
            out.append({"records": name, "table": row["table"], "train": row["train"],
                        "test": row["test"], "model": row["model"], "metric": row["metric"],
                        "paper": row["value"], "run": run,
                        "difference": None if run is None else run - row["value"]})
    return out


def section(rows: Sequence[dict], planned: Sequence[Sequence[dict]], records: Sequence[str],
            variant: str | None) -> dict:
    """The ``"paper"`` entry of ``metrics.json``."""
    return {"source": "Wang et al. 2022 (arXiv:2110.03290), Tables 3-6", "unit": "percent",
            "difference": "run - paper, percentage points", "variant": variant,
            "rows": list(rows),
            "unmatched": [str(r) for r, found in zip(records, planned) if not found]}


def write_comparison(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """``paper_comparison.csv``: `COLUMNS`, empty where the run has no number."""
    import pandas as pd

    pd.DataFrame(list(rows), columns=list(COLUMNS)).to_csv(path, index=False)


def format_comparison(rows: Sequence[dict]) -> str:
    """The comparison as printed: percent with 2 decimals, ``-`` where the run has no number.

    >>> print(format_comparison([{"records": "ffpp", "table": 5, "train": "FF++ c23 (4 methods)",
    ...     "test": "FF++ c23 (4 methods)", "model": "mclcr", "metric": "frame_auc",
    ...     "paper": 99.62, "run": 98.5, "difference": -1.12}]))
    records  table  train                 test                  model  metric     paper  run
        difference
    ffpp     5      FF++ c23 (4 methods)  FF++ c23 (4 methods)  mclcr  frame_auc  99.62  98.50
        -1.12
    """
    header = list(COLUMNS)
    cells = [[("-" if row[c] is None else f"{row[c]:+.2f}" if c == "difference" else
               f"{row[c]:.2f}" if c in ("paper", "run") else str(row[c])) for c in header]
             for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)

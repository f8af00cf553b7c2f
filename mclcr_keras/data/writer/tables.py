"""The tables beside the shards: ``manifest.csv``, ``videos.csv``, ``failures.csv`` and
``dataset.json``, their writers and readers in one module.

- ``manifest.csv``: one row per frame in the records (`MANIFEST_COLUMNS`).
- ``videos.csv``: one row per input video/image/frame folder, converted or not
  (`VIDEO_COLUMNS`), with how many sampled frames held a face.
- ``failures.csv``: one row per input that yielded no record, with the reason
  (`FAILURE_COLUMNS`).
- ``dataset.json``: schema version, counts per split/label/method, shard names, the converter's
  arguments and the library versions.

Every file is written to a temporary name and renamed, so a reader never sees half a table.
The layout is described in ``records/README.md``.

Example:

```python
rows = read_csv("records/ffpp/manifest.csv")
rows[0]["shard"]  # 'train/fake-00000-of-00001.tfrecord'
```
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import logging
import os
import platform
from collections.abc import Iterable, Mapping, Sequence

from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.files import json_text, write_atomic, write_json

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("split", "label", "dataset", "method", "compression", "video_id",
                    "frame_index", "shard", "box", "landmarks")
VIDEO_COLUMNS = ("split", "label", "dataset", "method", "compression", "video_id", "input",
                 "frames_sampled", "frames_with_face", "status")
FAILURE_COLUMNS = ("input", "reason", "split", "label", "dataset", "method", "video_id")
MANIFEST = "manifest.csv"
VIDEOS = "videos.csv"
FAILURES = "failures.csv"
DATASET_JSON = "dataset.json"
_LIBRARIES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "dlib": ("dlib-bin", "dlib"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "numpy": ("numpy",),
    "mclcr_keras": ("mclcr_keras", "mclcr-keras"),
}


# ------------------------------------------------------------------------------- formatting


def format_box(box: Sequence[float] | None) -> str:
    """``(x0, y0, x1, y1)`` -> ``"x0 y0 x1 y1"`` (integers, frame pixels); ``None`` -> ``""``."""
    return "" if box is None else " ".join(str(int(round(v))) for v in box)


def format_landmarks(points) -> str:
    """(5, 2) points -> ``"x0 y0 x1 y1 ... x4 y4"`` with one decimal; ``None`` -> ``""``."""
    if points is None:
        return ""
    return " ".join(f"{float(v):.1f}" for point in points for v in point)


def parse_box(text: str) -> tuple[int, ...] | None:
    """Inverse of `format_box`."""
    return tuple(int(v) for v in text.split()) if text.strip() else None


def parse_landmarks(text: str) -> list[tuple[float, float]] | None:
    """Inverse of `format_landmarks`: a list of ``(x, y)``."""
    if not text.strip():
        return None
    values = [float(v) for v in text.split()]
    return list(zip(values[0::2], values[1::2]))


# ---------------------------------------------------------------------------- files on disk


def write_csv(path: str, columns: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Writes ``rows`` (dicts with at least ``columns``) as CSV with a header, atomically."""
    write_atomic(path, lambda handle: _write_rows(handle, columns, rows))


def _write_rows(handle, columns: Sequence[str], rows: Iterable[Mapping]) -> None:
    writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})


def csv_text(columns: Sequence[str], rows: Iterable[Mapping]) -> str:
    """What `write_csv` writes, as a string."""
    buffer = io.StringIO(newline="")
    _write_rows(buffer, columns, rows)
    return buffer.getvalue()


def read_csv(path: str) -> list[dict[str, str]]:
    """Reads a CSV written by `write_csv` as a list of dicts of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the records (read from package metadata,
    so nothing heavy is imported)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, distributions in _LIBRARIES.items():
        versions[name] = None
        for distribution in distributions:
            try:
                versions[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


# ------------------------------------------------------------------------------- summaries


def _label_name(value) -> str:
    text = str(value)
    return LABEL_NAMES[int(text)] if text in ("0", "1") else text


def summarize(
    frames: Iterable[Mapping],
    videos: Iterable[Mapping],
    failures: Iterable[Mapping],
) -> dict:
    """Counts for ``dataset.json`` from manifest, videos and failure rows.

    Returns:
        ``{"frames": {split: {label: {method: n}}}, "videos": {...same for converted videos},
        "totals": {"frames", "videos", "failed", "frames_sampled", "frames_without_face"}}``.
    """
    def bump(table: dict, row: Mapping) -> None:
        by_label = table.setdefault(row["split"], {}).setdefault(_label_name(row["label"]), {})
        by_label[row["method"]] = by_label.get(row["method"], 0) + 1

    frame_counts: dict = {}
    video_counts: dict = {}
    totals = {"frames": 0, "videos": 0, "failed": 0, "frames_sampled": 0,
              "frames_without_face": 0}
    for row in frames:
        bump(frame_counts, row)
        totals["frames"] += 1
    for row in videos:
        sampled, with_face = int(row["frames_sampled"] or 0), int(row["frames_with_face"] or 0)
        totals["frames_sampled"] += sampled
        totals["frames_without_face"] += sampled - with_face
        if row["status"] == "ok":
            bump(video_counts, row)
            totals["videos"] += 1
    totals["failed"] = sum(1 for _ in failures)
    return {"frames": _sorted(frame_counts), "videos": _sorted(video_counts), "totals": totals}


def _sorted(table):
    if isinstance(table, dict):
        return {key: _sorted(table[key]) for key in sorted(table)}
    return table


def missing_classes(counts: Mapping) -> dict[str, list[str]]:
    """``{split: [labels without frames]}`` for every split of ``summarize``'s counts."""
    frames = counts.get("frames", {})
    return {split: [label for label in LABEL_NAMES if not frames[split].get(label)]
            for split in sorted(frames)
            if any(not frames[split].get(label) for label in LABEL_NAMES)}


def dataset_info(
    frames: Sequence[Mapping],
    videos: Sequence[Mapping],
    failures: Sequence[Mapping],
    shards: Mapping[str, Mapping[str, Sequence[str]]],
    arguments: Mapping,
    schema_version: int,
) -> dict:
    """The content of ``dataset.json``; a split without frames of a class is logged as a warning
    and listed under ``"missing_classes"`` (``{split: [label, ...]}``)."""
    counts = summarize(frames, videos, failures)
    missing = missing_classes(counts)
    for split, labels in missing.items():
        logger.warning("split %s has no %s frames: training cannot validate or select a model "
                       "on it", split, " or ".join(labels))
    return {
        "schema_version": schema_version,
        "counts": counts,
        "missing_classes": missing,
        "shards": _sorted({s: dict(by_label) for s, by_label in shards.items()}),
        "arguments": dict(arguments),
        "versions": library_versions(),
    }


def write_tables(
    out_dir: str,
    frames: Sequence[Mapping],
    videos: Sequence[Mapping],
    failures: Sequence[Mapping],
    info: Mapping,
) -> None:
    """Writes manifest.csv, videos.csv, failures.csv, then dataset.json (last: its presence
    marks a complete output)."""
    write_csv(os.path.join(out_dir, MANIFEST), MANIFEST_COLUMNS, frames)
    write_csv(os.path.join(out_dir, VIDEOS), VIDEO_COLUMNS, videos)
    write_csv(os.path.join(out_dir, FAILURES), FAILURE_COLUMNS, failures)
    write_json(os.path.join(out_dir, DATASET_JSON), info)


def table_texts(
    frames: Sequence[Mapping],
    videos: Sequence[Mapping],
    failures: Sequence[Mapping],
    info: Mapping,
) -> list[tuple[str, str]]:
    """``[(file name, text)]`` of what `write_tables` writes, in its order (dataset.json last):
    for writers on other filesystems (the Beam engine)."""
    return [(MANIFEST, csv_text(MANIFEST_COLUMNS, frames)),
            (VIDEOS, csv_text(VIDEO_COLUMNS, videos)),
            (FAILURES, csv_text(FAILURE_COLUMNS, failures)),
            (DATASET_JSON, json_text(info))]

"""The tables beside the shards: ``manifest.csv``, ``videos.csv``, ``failures.csv``,
``dataset.json`` (writers and readers in one module), and the merge of partition outputs.

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

>>> rows = read_csv("records/ffpp/manifest.csv")
>>> rows[0]["shard"]
'train/fake-00000-of-00001.tfrecord'
"""

from __future__ import annotations

import csv
import glob
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence

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
PARTS_DIR = "parts"
LABEL_NAMES = ("real", "fake")
_LIBRARIES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "dlib": ("dlib-bin", "dlib"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "numpy": ("numpy",),
    "mclcr_keras": ("mclcr_keras", "mclcr-keras"),
}
_PART_RE = re.compile(r"^part-(\d{5})-of-(\d{5})$")


class MergeError(ValueError):
    """Partition outputs that cannot be merged (missing, incomplete or inconsistent)."""


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


def _atomic_write(path: str, write) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_csv(path: str, columns: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Writes ``rows`` (dicts with at least ``columns``) as CSV with a header, atomically."""
    def write(handle) -> None:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})

    _atomic_write(path, write)


def read_csv(path: str) -> list[dict[str, str]]:
    """Reads a CSV written by `write_csv` as a list of dicts of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_json(path: str, data: Mapping) -> None:
    """Writes ``data`` as indented JSON, atomically."""
    _atomic_write(path, lambda handle: json.dump(data, handle, indent=2, sort_keys=False))


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


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


def dataset_info(
    frames: Sequence[Mapping],
    videos: Sequence[Mapping],
    failures: Sequence[Mapping],
    shards: Mapping[str, Mapping[str, Sequence[str]]],
    arguments: Mapping,
    schema_version: int,
) -> dict:
    """The content of ``dataset.json``."""
    return {
        "schema_version": schema_version,
        "counts": summarize(frames, videos, failures),
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


# ----------------------------------------------------------------------------------- merge


def partition_dir(out_dir: str, partition: int, num_partitions: int) -> str:
    """Where partition ``i`` of ``K`` writes: ``OUT/parts/part-0000i-of-0000K``."""
    return os.path.join(out_dir, PARTS_DIR, f"part-{partition:05d}-of-{num_partitions:05d}")


def _find_parts(out_dir: str) -> list[str]:
    parts_root = os.path.join(out_dir, PARTS_DIR)
    names = sorted(n for n in os.listdir(parts_root) if _PART_RE.match(n)) \
        if os.path.isdir(parts_root) else []
    if not names:
        raise MergeError(f"no partitions to merge under {parts_root}")
    counts = {int(_PART_RE.match(n).group(2)) for n in names}
    if len(counts) != 1:
        raise MergeError(f"partitions of different counts under {parts_root}: {sorted(counts)}")
    total = counts.pop()
    present = {int(_PART_RE.match(n).group(1)) for n in names}
    missing = sorted(set(range(total)) - present)
    if missing:
        raise MergeError(f"missing partition(s) {missing} of {total} under {parts_root}")
    paths = [os.path.join(parts_root, n) for n in names]
    incomplete = [p for p in paths if not os.path.isfile(os.path.join(p, DATASET_JSON))
                  or os.path.exists(os.path.join(p, ".work"))]
    if incomplete:
        raise MergeError(f"partition(s) not finished (rerun them with --resume): "
                         f"{', '.join(os.path.basename(p) for p in incomplete)}")
    return paths


def _plan_merge(out_dir: str, parts: Sequence[str], shard_name) -> dict:
    """Final shard names over all partitions, in partition order, per split and class."""
    moves: list[tuple[str, str]] = []
    renames: dict[str, dict[str, str]] = {}
    shards: dict[str, dict[str, list[str]]] = {}
    infos = [read_json(os.path.join(p, DATASET_JSON)) for p in parts]
    splits = sorted({s for info in infos for s in info["shards"]})
    for split in splits:
        for label in LABEL_NAMES:
            sources = [(part, name) for part, info in zip(parts, infos)
                       for name in info["shards"].get(split, {}).get(label, [])]
            for index, (part, name) in enumerate(sources):
                final = shard_name(label, index, len(sources))
                moves.append((os.path.join(part, split, name), os.path.join(out_dir, split, final)))
                renames.setdefault(os.path.basename(part), {})[f"{split}/{name}"] = \
                    f"{split}/{final}"
                shards.setdefault(split, {}).setdefault(label, []).append(final)
    arguments = dict(infos[0]["arguments"])
    arguments.pop("partition", None)
    return {"parts": [os.path.basename(p) for p in parts], "moves": moves, "renames": renames,
            "shards": shards, "arguments": arguments,
            "schema_version": infos[0]["schema_version"]}


def merge_partitions(out_dir: str, shard_name) -> dict:
    """Merges ``OUT/parts/part-*-of-K`` into one output ``OUT`` and removes ``OUT/parts``.

    Shards are moved (not copied) to ``OUT/<split>/<label>-NNNNN-of-NNNNN.tfrecord`` numbered
    over all partitions in partition order; the tables are concatenated in partition order with
    the shard column rewritten. The plan is saved to ``OUT/.merge-plan.json`` before anything
    moves, so an interrupted merge finishes when run again.

    Args:
        out_dir: the ``--out`` directory the partitions were built under.
        shard_name: ``mclcr_keras.data.schema.shard_name``.

    Returns:
        The ``dataset.json`` content written to ``OUT``.

    Raises:
        MergeError: a partition is missing, unfinished, or the output already exists.
    """
    plan_path = os.path.join(out_dir, ".merge-plan.json")
    if os.path.isfile(plan_path):
        plan = read_json(plan_path)
    else:
        if os.path.isfile(os.path.join(out_dir, DATASET_JSON)):
            raise MergeError(f"{out_dir} already holds a merged output ({DATASET_JSON})")
        parts = _find_parts(out_dir)
        plan = _plan_merge(out_dir, parts, shard_name)
        write_json(plan_path, plan)
    parts_root = os.path.join(out_dir, PARTS_DIR)
    frames: list[dict] = []
    videos: list[dict] = []
    failures: list[dict] = []
    for part in plan["parts"]:
        directory = os.path.join(parts_root, part)
        renames = plan["renames"].get(part, {})
        for row in read_csv(os.path.join(directory, MANIFEST)):
            row["shard"] = renames[row["shard"]]
            frames.append(row)
        videos.extend(read_csv(os.path.join(directory, VIDEOS)))
        failures.extend(read_csv(os.path.join(directory, FAILURES)))
    for source, target in plan["moves"]:
        if os.path.exists(source):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)
        elif not os.path.exists(target):
            raise MergeError(f"shard {source} vanished before the merge moved it")
    arguments = dict(plan["arguments"], merged_partitions=len(plan["parts"]))
    info = dataset_info(frames, videos, failures, plan["shards"], arguments,
                        plan["schema_version"])
    write_tables(out_dir, frames, videos, failures, info)
    shutil.rmtree(parts_root)
    os.remove(plan_path)
    return info


def list_final_shards(out_dir: str) -> list[str]:
    """Relative paths of the final shards under ``out_dir`` (``<split>/<label>-*-of-*``)."""
    found = glob.glob(os.path.join(out_dir, "*", "*-*-of-*.tfrecord"))
    return sorted(os.path.relpath(p, out_dir) for p in found)

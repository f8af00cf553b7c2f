"""Merging the outputs of ``--num-partitions K --partition i`` runs into one records folder.

Example:

```python
info = merge_partitions("records/ffpp", shard_name)  # shard_name: mclcr_keras.data.schema's
```
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence

from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.data.writer.tables import (
    DATASET_JSON,
    FAILURES,
    MANIFEST,
    VIDEOS,
    dataset_info,
    read_csv,
    write_tables,
)
from mclcr_keras.files import read_json, write_json

PARTS_DIR = "parts"
_PART_RE = re.compile(r"^part-(\d{5})-of-(\d{5})$")


class MergeError(ValueError):
    """Partition outputs that cannot be merged (missing, incomplete or inconsistent)."""


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
    first = read_json(os.path.join(parts_root, plan["parts"][0], DATASET_JSON))
    info["source_files"] = first.get("source_files", {})
    info["duplicates"] = [duplicate for part in plan["parts"] for duplicate in
                          read_json(os.path.join(parts_root, part, DATASET_JSON)).get(
                              "duplicates", [])]
    write_tables(out_dir, frames, videos, failures, info)
    shutil.rmtree(parts_root)
    os.remove(plan_path)
    return info

"""The converter: a source layout -> sharded TFRecords of aligned faces, resumable after any crash.

`build` lists the inputs (`mclcr_keras.data.sources`), converts them in worker processes
(`mclcr_keras.data.writer.workers`), serializes ``tf.train.Example``s in this process and writes
them through the journaled shard streams (`mclcr_keras.data.writer.shards`), then the tables
(`mclcr_keras.data.writer.tables`). ``resume=True`` after a crash or ``kill -9`` ends with the same
shards as an uninterrupted run. See ``docs/build_records.md``.

Example:

```python
info = build(BuildOptions("folder", root="my_faces", out="records/mine"))
info["counts"]["totals"]["failed"]  # 0: every input gave records
```
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from mclcr_keras.data import schema, sources, splits, storage
from mclcr_keras.data.writer import merge as merging
from mclcr_keras.data.writer import rows, shards, tables, workers
from mclcr_keras.data.writer.duplicates import find_duplicates
from mclcr_keras.data.writer.options import CONTENT_OPTIONS, BuildOptions
from mclcr_keras.errors import UsageError
from mclcr_keras.files import read_json, write_json

logger = logging.getLogger(__name__)

WORK = ".work"
CONFIG = "config.json"
FAILURES_KEY = "failed"


def failed_inputs(info: dict) -> int:
    """How many inputs of a finished build gave no record (rows of ``failures.csv``)."""
    return int(info["counts"]["totals"][FAILURES_KEY])


def summary(info: dict, out: str) -> str:
    """The one-line report of a finished build."""
    totals = info["counts"]["totals"]
    inputs = totals["videos"] + totals["failed"]
    count = sum(len(v) for by_label in info["shards"].values() for v in by_label.values())
    text = (f"build_records: converted {totals['videos']} of {inputs} inputs: "
            f"{totals['frames']} frames in {count} shards under {out}; "
            f"{totals['failed']} failed")
    if totals["failed"]:
        text += f" (see {os.path.join(out, tables.FAILURES)})"
    text += f"; {totals['frames_without_face']} sampled frames had no face"
    if info.get("duplicates"):
        text += f"; {len(info['duplicates'])} duplicate inputs converted once"
    if info.get("missing_classes"):
        text += "; no " + ", no ".join(f"{' or '.join(labels)} in {split}"
                                       for split, labels in info["missing_classes"].items())
    return text


def _is_build_output(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, name))
               for name in (WORK, tables.DATASET_JSON, merging.PARTS_DIR))


def prepare_out(target: str, options: BuildOptions) -> None:
    """Creates ``target``, or checks that ``resume``/``overwrite`` may use the folder there.

    Raises:
        UsageError: a file in the way, or a non-empty folder that is not a build_records output
            (never deleted) or that needs ``resume``/``overwrite``.
    """
    if not os.path.isdir(target):
        if os.path.exists(target):
            raise UsageError(f"--out {target} exists and is not a directory")
        os.makedirs(target)
        return
    if not os.listdir(target):
        return
    if options.overwrite:
        if not _is_build_output(target):
            raise UsageError(f"refusing to delete {target}: it is not a build_records output")
        shutil.rmtree(target)
        os.makedirs(target)
        return
    if not options.resume:
        raise UsageError(f"output directory {target} is not empty; pass --resume to finish an "
                         f"interrupted build there or --overwrite to replace it")
    if not _is_build_output(target):
        raise UsageError(f"cannot resume in {target}: it is not a build_records output")


def check_same_content(previous: dict, config: dict) -> None:
    """`UsageError` when a resumed build's content options differ from the interrupted one's
    (``WORK/config.json``; both engines)."""
    changed = [name for name in CONTENT_OPTIONS if previous.get(name) != config.get(name)]
    if changed:
        name = changed[0]
        raise UsageError(
            f"cannot resume: --{name.replace('_', '-')} was {previous.get(name)!r}, now "
            f"{config.get(name)!r}; use the same options or a new --out")


def _check_resume_config(work_dir: str, config: dict) -> None:
    path = os.path.join(work_dir, CONFIG)
    if os.path.isfile(path):
        check_same_content(read_json(path), config)
    else:
        write_json(path, config)


def output_dir(options: BuildOptions) -> str:
    """Where a run writes: ``out``, or its partition folder ``out/parts/part-i-of-K``."""
    if options.num_partitions > 1:
        return merging.partition_dir(options.out, options.partition, options.num_partitions)
    return options.out


def source_files(options: BuildOptions) -> dict[str, str]:
    """SHA-256 of the files that decided the splits and labels: FF++'s split JSONs, Celeb-DF's
    test list, DFDC's metadata.json files, a folder's labels.csv (name -> digest)."""
    root = options.root or ""
    if options.source == "ffpp" and options.splits_dir:
        paths = [os.path.join(options.splits_dir, f"{s}.json") for s in splits.SPLITS]
    elif options.source == "celebdf":
        paths = [os.path.join(options.splits_dir or root, "List_of_testing_videos.txt")]
    elif options.source == "dfdc":
        paths = sorted(os.path.join(d, "metadata.json") for d, _, names in storage.walk(root)
                       if "metadata.json" in names)
    elif options.source == "folder":
        paths = [os.path.join(root, "labels.csv")]
    else:
        paths = []
    base = {"ffpp": options.splits_dir, "celebdf": options.splits_dir or root}.get(
        options.source, root)
    return {storage.relpath(path, base): storage.sha256(path) for path in paths
            if storage.isfile(path)}


def list_inputs(options: BuildOptions) -> list:
    """The source's items (`mclcr_keras.data.sources.Item`), raising `UsageError` for layouts."""
    try:
        fractions = splits.parse_fractions(options.split_fractions)
    except ValueError as error:
        raise UsageError(str(error)) from None
    layout: dict = {"fractions": fractions}
    if options.source == "ffpp":
        methods = [m.strip() for m in options.methods.split(",") if m.strip()]
        layout.update(compression=options.compression, methods=methods,
                      splits_dir=options.splits_dir)
    elif options.source == "celebdf":
        layout.update(splits_dir=options.splits_dir)
    elif options.source == "folder":
        layout.update(dataset=options.dataset_name)
    try:
        return sources.list_items(options.source, options.root, **layout)
    except sources.SourceError as error:
        raise UsageError(str(error)) from None


def build(options: BuildOptions) -> dict:
    """Runs a conversion (one partition, or the whole job); returns its ``dataset.json``.

    Raises:
        UsageError: bad options or layout, or an output folder in the way (nothing done).
    """
    options.validate()
    if options.engine != "local":
        raise UsageError(f"build() is the local engine; --engine {options.engine} runs "
                         f"mclcr_keras.beam.records.build")
    if options.is_merge:
        return merge(options)
    items = list_inputs(options)
    target = output_dir(options)
    prepare_out(target, options)
    if options.resume and os.path.isfile(os.path.join(target, tables.DATASET_JSON)) \
            and not os.path.exists(os.path.join(target, WORK)):
        info = read_json(os.path.join(target, tables.DATASET_JSON))
        logger.info("%s is already complete", target)
        return info
    # Duplicates over the whole listing, so that partitions agree on them.
    items, conflicts, repeated = find_duplicates(items, threads=max(4, options.workers))
    refused = {item.key: reason for item, reason in conflicts}
    items = sorted([*items, *(item for item, _ in conflicts)])
    if options.num_partitions > 1:
        def mine(key: str) -> bool:
            return splits.partition_of(key, options.num_partitions) == options.partition

        items = [i for i in items if mine(i.key)]
        refused = {key: reason for key, reason in refused.items() if mine(key)}
        repeated = [d for d in repeated if mine(d["key"])]
    info = _convert(items, target, options, refused)
    info["duplicates"] = [{k: v for k, v in d.items() if k != "key"} for d in repeated]
    info["source_files"] = source_files(options)
    write_json(os.path.join(target, tables.DATASET_JSON), info)
    return info


def _convert(items: list, target: str, options: BuildOptions,
             refused: dict[str, str] | None = None) -> dict:
    """Converts ``items``; those in ``refused`` (key -> reason) fail without being read."""
    refused = refused or {}
    from tqdm import tqdm

    work_dir = os.path.join(target, WORK)
    os.makedirs(work_dir, exist_ok=True)
    _check_resume_config(work_dir, options.content_config())
    journal = shards.Journal(work_dir)
    if shards.is_finalizing(work_dir):  # interrupted while renaming: every input is done
        journal.close()
        return _finish(target, work_dir, journal, options, time.time())
    streams = shards.ShardStreams(work_dir, journal, int(options.shard_mb * (1 << 20)))
    todo = [item for item in items if item.key not in journal.done]
    if len(todo) < len(items):
        logger.info("resuming: %d of %d inputs already done", len(items) - len(todo), len(items))
    started = time.time()
    tasks = [(item.kind, item.paths) for item in todo if item.key not in refused]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="video",
               disable=options.quiet, desc="build_records", dynamic_ncols=True)
    converted, stop = workers.start(tasks, options.crop_options(), options.workers)
    aborted = True
    try:
        # TensorFlow serializes in this process while the workers already convert.
        for item in todo:
            if item.key in refused:
                result = rows.refused(refused[item.key])
            else:
                result = next(converted)
            video, frames = rows.rows(item, result)
            if result["failure"]:
                logger.warning("%s: %s", item.input, result["failure"])
                streams.add_failure(video, rows.failure_row(item, video, result["failure"]))
            else:
                streams.add_video(item.split, item.label_name, video,
                                  list(zip(frames, rows.serialize(item, result))))
            bar.update(1)
        streams.close()
        aborted = False
    finally:
        stop(abort=aborted)
        bar.close()
        journal.close()
    return _finish(target, work_dir, journal, options, started)


def _finish(target: str, work_dir: str, journal, options: BuildOptions, started: float) -> dict:
    """Final shard names, tables, dataset.json; removes the work directory."""
    frames, videos, failures, shard_names = shards.finalize(target, work_dir, journal,
                                                           schema.shard_name)
    arguments = dict(options.content_config(), workers=options.workers)
    info = tables.dataset_info(frames, videos, failures, shard_names, arguments,
                               schema.SCHEMA_VERSION)
    # Conversion time of this run (after a resume: of the last run only).
    info["seconds"] = round(time.time() - started, 1)
    tables.write_tables(target, frames, videos, failures, info)
    shutil.rmtree(work_dir)
    return info


def merge(options: BuildOptions) -> dict:
    """Merges the partitions under ``options.out``; returns the merged ``dataset.json``."""
    try:
        return merging.merge_partitions(options.out, schema.shard_name)
    except merging.MergeError as error:
        raise UsageError(str(error)) from None

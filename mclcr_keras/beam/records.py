"""``build_records --engine beam``: the conversion as an Apache Beam pipeline (docs/beam.md).

The same listing, duplicate check, per-input conversion (`mclcr_keras.data.writer.workers.
Converter`), rows and examples (`mclcr_keras.data.writer.rows`) and tables as the local engine,
so the output is the local engine's, shard for shard. The pipeline:

1. ``ConvertInput`` (parallel, after a reshuffle): an input -> its examples, written to
   ``OUT/.work/videos/<digest>.tfrecord``, and a summary (rows, byte count) written beside it as
   ``<digest>.json`` *after* the examples: a summary file means the input is done, so a retried
   bundle or a rerun with ``--resume`` skips it. Inputs that give no record leave through a
   dead-letter output (``failures.csv``); no input fails the pipeline.
2. Shard assignment per (split, class), on the summaries only (no image bytes are shuffled):
   in listing order, a shard is closed after the input that takes it to ``--shard-mb``, exactly as
   the local engine's streams close theirs, so shard names and contents are the same.
3. ``write_shard`` (parallel): a shard = its inputs' example files concatenated (a TFRecord file
   is its records one after the other), written under a temporary name and renamed.
4. ``finish`` (once every shard is written): ``manifest.csv``, ``videos.csv``, ``failures.csv``,
   then ``dataset.json``; the work folder is removed. No wall time is recorded, so a rerun writes
   the same bytes.

Example:

```python
info = build(BuildOptions("ffpp", root="FF++", out="records/ffpp", engine="beam",
                          splits_dir="FF++/splits"))
```
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile

import apache_beam as beam

from mclcr_keras import quiet_tf
from mclcr_keras.beam import fs
from mclcr_keras.beam.options import pipeline_options, quiet_beam
from mclcr_keras.data import crops, schema
from mclcr_keras.data.writer import build as local
from mclcr_keras.data.writer import rows, tables
from mclcr_keras.data.writer.duplicates import find_duplicates
from mclcr_keras.data.writer.options import BuildOptions
from mclcr_keras.data.writer.workers import Converter
from mclcr_keras.errors import UsageError

logger = logging.getLogger(__name__)

VIDEOS = "videos"
FAILED = "failed"
ENGINE = "beam"
_FRAMING = 16  # TFRecord framing per record: length, two CRCs (as the local shard streams)


def _digest(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def _write_tfrecord(path: str, records: list[bytes]) -> None:
    import tensorflow as tf

    handle, temporary = tempfile.mkstemp(suffix=".tfrecord", prefix="mclcr_")
    os.close(handle)
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for record in records:
                writer.write(record)
        fs.concatenate([temporary], path)
    finally:
        os.remove(temporary)


class ConvertInput(beam.DoFn):
    """``(order, item, refused reason or None)`` -> the input's summary; failures tagged
    `FAILED` (the dead-letter output)."""

    def __init__(self, crop_options: dict, work: str):
        self.crop_options = crop_options
        self.work = work

    def setup(self):
        import cv2

        cv2.setNumThreads(1)  # one conversion per worker process, as the local engine
        quiet_tf.import_tensorflow()  # the examples are serialized here
        self.converter = Converter(self.crop_options)

    def process(self, element):
        order, item, refused = element
        base = fs.join(self.work, VIDEOS, _digest(item.key))
        done = base + ".json"
        if fs.exists(done):  # converted by an earlier attempt or run
            summary = json.loads(fs.read_bytes(done))
        else:
            summary = self._convert(order, item, refused, base + ".tfrecord")
            fs.write_bytes(done, json.dumps(summary).encode("utf-8"))
        if summary["failure"]:
            logger.warning("%s: %s", item.input, summary["failure"])
            yield beam.pvalue.TaggedOutput(FAILED, summary)
        else:
            yield summary

    def _convert(self, order: int, item, refused: str | None, examples_path: str) -> dict:
        if refused:
            result = rows.refused(refused)
        else:
            try:
                with contextlib.ExitStack() as stack:
                    paths = tuple(stack.enter_context(fs.local_copy(p)) for p in item.paths)
                    result = self.converter.convert(item.kind, paths)
            except Exception as error:  # e.g. a remote file that cannot be read
                result = rows.refused(crops.failure_reason(error))
        video, frames = rows.rows(item, result)
        summary = {"order": order, "key": item.key, "split": item.split,
                   "label": item.label_name, "video": video, "frames": frames,
                   "failure": result["failure"], "bytes": 0, "examples": examples_path}
        if result["failure"]:
            summary["failure_row"] = rows.failure_row(item, video, result["failure"])
            return summary
        examples = rows.serialize(item, result)
        _write_tfrecord(examples_path, examples)
        summary["bytes"] = sum(len(e) + _FRAMING for e in examples)
        return summary


def assign_shards(summaries, target_bytes: int) -> dict[tuple[str, str], list[list[dict]]]:
    """``{(split, label): [shard -> its inputs' summaries]}``: in listing order, a shard is closed
    after the input that takes it to ``target_bytes`` (`mclcr_keras.data.writer.shards`' rule)."""
    streams: dict[tuple[str, str], list[dict]] = {}
    for summary in summaries:
        streams.setdefault((summary["split"], summary["label"]), []).append(summary)
    return {stream: fill_shards(members, target_bytes) for stream, members in streams.items()}


def fill_shards(members, target_bytes: int) -> list[list[dict]]:
    """One stream's inputs (``order``, ``bytes``) cut into shards, in listing order."""
    shards, size = [[]], 0
    for summary in sorted(members, key=lambda s: s["order"]):
        shards[-1].append(summary)
        size += summary["bytes"]
        if size >= target_bytes:
            shards.append([])
            size = 0
    return [shard for shard in shards if shard]


def shard_files(stream: tuple[str, str], shards: list[list[dict]]) -> list[tuple[str, list]]:
    """``[(split/<label>-NNNNN-of-NNNNN.tfrecord, [summaries])]`` of one stream."""
    split, label = stream
    return [(f"{split}/{schema.shard_name(label, index, len(shards))}", members)
            for index, members in enumerate(shards)]


def write_shard(out: str, name: str, examples: list[str]) -> str:
    fs.concatenate(examples, fs.join(out, *name.split("/")))
    return name


def _stream_shards(keyed, target_bytes: int):
    stream, members = keyed
    for name, shard in shard_files(stream, fill_shards(members, target_bytes)):
        yield name, [m["examples"] for m in shard]


def finish(summaries: list[dict], written: list[str], out: str, work: str, target_bytes: int,
           extra: dict) -> str:
    """Writes the tables (dataset.json last) and removes the work folder."""
    frames, shards = [], {}
    converted = [s for s in summaries if not s["failure"]]
    for stream, stream_shards in sorted(assign_shards(converted, target_bytes).items()):
        for name, members in shard_files(stream, stream_shards):
            shards.setdefault(stream[0], {}).setdefault(stream[1], []).append(
                name.split("/", 1)[1])
            frames.extend(dict(row, shard=name) for m in members for row in m["frames"])
    expected = {f"{split}/{name}" for split, by_label in shards.items()
                for names in by_label.values() for name in names}
    if expected != set(written):
        raise RuntimeError(f"shards written {sorted(written)} differ from {sorted(expected)}")
    videos = sorted((s["video"] for s in summaries), key=lambda v: v["key"])
    failures = sorted((s["failure_row"] for s in summaries if s["failure"]),
                      key=lambda f: (f["input"], f["reason"]))
    info = tables.dataset_info(frames, videos, failures, shards, extra["arguments"],
                               schema.SCHEMA_VERSION)
    info["duplicates"] = extra["duplicates"]
    info["source_files"] = extra["source_files"]
    fs.delete_files(fs.match(fs.join(out, "*", "*.tmp-*")))  # writes killed mid-way
    for name, text in tables.table_texts(frames, videos, failures, info):
        fs.write_bytes(fs.join(out, name), text.encode("utf-8"))
    fs.delete_tree(work)
    return out


def _prepare(options: BuildOptions) -> None:
    """The local engine's checks of ``--out`` (``--resume`` / ``--overwrite``), on any
    filesystem."""
    out = options.out
    if fs.is_local(out):
        local.prepare_out(out, options)
    elif fs.exists(fs.join(out, tables.DATASET_JSON)) or fs.has_any(fs.join(out, local.WORK)):
        if options.overwrite:
            fs.delete_tree(out)
        elif not options.resume:
            raise UsageError(f"output directory {out} is not empty; pass --resume to finish an "
                             f"interrupted build there or --overwrite to replace it")
    config_path = fs.join(out, local.WORK, local.CONFIG)
    config = options.content_config()
    if fs.exists(config_path):
        local.check_same_content(json.loads(fs.read_bytes(config_path)), config)
    else:
        fs.write_bytes(config_path, json.dumps(config).encode("utf-8"))


def build(options: BuildOptions) -> dict:
    """Runs the conversion on Beam (`options.pipeline_args`, the local runner by default);
    returns the written ``dataset.json``.

    Raises:
        UsageError: bad options, layout or pipeline options, or an output in the way.
    """
    options.validate()
    if options.is_merge or options.num_partitions > 1:
        raise UsageError("--engine beam distributes the conversion itself: --num-partitions and "
                         "merge belong to the local engine")
    verbose = logger.isEnabledFor(logging.DEBUG)
    beam_options = pipeline_options(options.pipeline_args, options.workers, verbose)
    quiet_beam(verbose)
    out = options.out
    fs.register_listing(options.root, options.splits_dir)
    items = local.list_inputs(options)
    dataset_json = fs.join(out, tables.DATASET_JSON)
    if options.resume and fs.exists(dataset_json) and not fs.has_any(fs.join(out, local.WORK)):
        logger.info("%s is already complete", out)
        return json.loads(fs.read_bytes(dataset_json))
    _prepare(options)
    kept, conflicts, repeated = find_duplicates(items, threads=max(4, options.workers))
    refused = {item.key: reason for item, reason in conflicts}
    ordered = sorted([*kept, *(item for item, _ in conflicts)])
    elements = [(order, item, refused.get(item.key)) for order, item in enumerate(ordered)]
    target_bytes = int(options.shard_mb * (1 << 20))
    work = fs.join(out, local.WORK)
    extra = {"arguments": dict(options.content_config(), workers=options.workers,
                               engine=ENGINE),
             "duplicates": [{k: v for k, v in d.items() if k != "key"} for d in repeated],
             "source_files": local.source_files(options)}
    logger.info("converting %d inputs on Beam (%s)", len(elements),
                beam_options.get_all_options()["runner"])
    with beam.Pipeline(options=beam_options) as pipeline:
        results = (pipeline
                   | "Inputs" >> beam.Create(elements)
                   | "Spread" >> beam.Reshuffle()
                   | "Convert" >> beam.ParDo(ConvertInput(options.crop_options(), work))
                   .with_outputs(FAILED, main="converted"))
        written = (results.converted
                   | "ByStream" >> beam.Map(lambda s: ((s["split"], s["label"]),
                                                       {k: s[k] for k in ("order", "bytes",
                                                                          "examples")}))
                   | "Streams" >> beam.GroupByKey()
                   | "Assign" >> beam.FlatMap(_stream_shards, target_bytes)
                   | "SpreadShards" >> beam.Reshuffle()
                   | "WriteShards" >> beam.MapTuple(lambda name, ex: write_shard(out, name, ex)))
        _ = ((results.converted, results[FAILED])
             | "All" >> beam.Flatten()
             | "Gather" >> beam.combiners.ToList()
             | "Finish" >> beam.Map(finish, beam.pvalue.AsList(written), out, work,
                                    target_bytes, extra))
    return json.loads(fs.read_bytes(dataset_json))

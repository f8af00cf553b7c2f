"""tf.data readers for the records of `mclcr_keras.data.schema`.

`make_dataset` reads ``<records_dir>/<split>/<real|fake>-NNNNN-of-NNNNN.tfrecord`` and yields

- training: an endless stream of shuffled, horizontally flipped (unless ``flip=False``) batches in
  which every batch, and each half of every batch, holds exactly as many real as fake faces (the
  paper trains on 8 real + 8 fake; a two-way ``tf.distribute`` split gives each replica its own
  balanced 4 + 4);
- evaluation: every frame exactly once, in a deterministic order, optionally with its metadata.

Every shard is checked before reading (a cheap walk over the record headers) and counted; while
reading, a shard that ends before its count (a bad data checksum, a file changed underneath) fails
with a message naming the file. TensorFlow's own ``DataLossError`` does not name the file.
See ``docs/pipeline.md``.
"""

from __future__ import annotations

import logging
import os
import re

import tensorflow as tf

from mclcr_keras.data import schema
from mclcr_keras.data.records import (
    CORRUPT_SHARD_MESSAGE,
    CorruptShardError,
    list_shards,
    scan_shard,
)

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE

# --- graph pieces ---------------------------------------------------------------------------

def _read_shard(path: tf.Tensor, expected: tf.Tensor, class_id: tf.Tensor) -> tf.data.Dataset:
    """Records of one shard as (record, path, class_id); fails naming the shard if it ends early.

    TFRecordDataset reports a bad checksum as a DataLossError without the file name, and there
    is no try/except in a tf.data graph. So read errors end the file (``ignore_errors``), and
    behind the records waits one element whose only job is to fail with the file name; ``take``
    of the scanned count never reaches it unless records are missing. No function runs per
    record. ``expected < 0`` (no scan) reads the file plainly.
    """
    records = tf.data.TFRecordDataset(path)
    if not (isinstance(expected, int) and expected < 0):

        def fail(shard):
            check = tf.debugging.Assert(
                False,
                [CORRUPT_SHARD_MESSAGE, shard, "yields fewer than", expected, "records (a bad "
                 "record checksum, or the file changed after make_dataset scanned it)"],
            )
            with tf.control_dependencies([check]):
                return tf.identity(shard)

        failure = tf.data.Dataset.from_tensors(path).map(fail)
        records = records.ignore_errors().concatenate(failure).take(expected)
    paths = tf.data.Dataset.from_tensors(path).repeat()
    class_ids = tf.data.Dataset.from_tensors(class_id).repeat()
    return tf.data.Dataset.zip(records, paths, class_ids)


def _stored_size(paths: list[str]) -> tuple[int, int] | None:
    """(height, width) of the first record's image, or None when the shards hold no record."""
    for path in paths:
        try:
            for record in tf.data.TFRecordDataset(path).take(1):
                image = schema.decode_image(schema.parse_example(record)["image"])
                return int(image.shape[0]), int(image.shape[1])
        except tf.errors.DataLossError as error:
            reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", error.message.strip())
            raise CorruptShardError(f"{CORRUPT_SHARD_MESSAGE} {path}: {reason}") from None
    return None


def _decoder(image_size: int, resize: bool, flip: bool, with_metadata: bool):
    """The per-record map: parse, decode, random flip, resize when the stored size differs.

    No control flow (``tf.cond``/``Assert`` become function calls per record, measurably slow on
    two cores): the flip reverses over a runtime list of axes, empty or ``[1]``, and whether to
    resize is decided once per dataset from the first record. Pixels stay uint8 (float32 after a
    resize) until `_finisher` casts the whole batch.
    """

    def decode(record, path, class_id, rand):
        feats = schema.parse_example(record)
        image = schema.decode_image(feats["image"])
        if flip:
            # One bit of the per-element random number: the same flips for the same seed even
            # though the map runs in parallel (a stateful random op would follow thread order).
            mirror = tf.cast(tf.bitwise.bitwise_and(rand, 1), tf.int32)
            image = tf.reverse(image, axis=tf.range(1, 1 + mirror))
        if resize:
            image = tf.clip_by_value(
                tf.image.resize(image, [image_size, image_size], antialias=True), 0.0, 255.0
            )
        image = tf.ensure_shape(image, [image_size, image_size, 3])
        meta = {key: feats[key] for key in schema.METADATA_KEYS} if with_metadata else {}
        return image, feats["label"], path, class_id, meta

    return decode


def _finisher(with_metadata: bool):
    """The per-batch map: check labels against the shards' classes, cast to float32."""

    def finish(images, labels, paths, class_ids, meta):
        wrong = tf.not_equal(labels, class_ids)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(wrong)),
            ["record with the wrong label in", tf.boolean_mask(paths, wrong)],
        )
        with tf.control_dependencies([check]):
            images = tf.cast(images, tf.float32)
        labels = tf.cast(labels, tf.float32)
        if with_metadata:
            return images, labels, meta
        return images, labels

    return finish


def _files(paths: list[str], counts: list[int]) -> tf.data.Dataset:
    class_ids = [schema.LABEL_NAMES.index(schema.parse_shard_name(p)[0]) for p in paths]
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths), tf.constant(counts, tf.int64), tf.constant(class_ids, tf.int64))
    )


def _check_arguments(split, batch_size, training, image_size, balanced, shuffle_buffer,
                     num_parallel_reads, flip) -> None:
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if training and balanced and batch_size % 4:
        raise ValueError(
            "balanced training needs batch_size divisible by 4 (half real, half fake, and each "
            f"half of the batch balanced for a two-replica split), got {batch_size}"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be a positive int, got {shuffle_buffer!r}")
    if not isinstance(num_parallel_reads, int) or num_parallel_reads < 1:
        raise ValueError(f"num_parallel_reads must be a positive int, got {num_parallel_reads!r}")
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False, got {flip!r}")


# --- the public reader ----------------------------------------------------------------------

def make_dataset(
    records_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int = 16,
    training: bool = True,
    image_size: int = 256,
    balanced: bool | None = None,
    with_metadata: bool = False,
    shuffle_buffer: int = 1024,
    seed: int | None = None,
    num_parallel_reads: int = 8,
    check_shards: bool = True,
    flip: bool = True,
) -> tf.data.Dataset:
    """Batches of face crops from ``<records_dir>/<split>/<real|fake>-*.tfrecord``.

    Training (``training=True``) repeats forever (pass ``steps_per_epoch`` to ``fit``; see
    `count_records`): per class, shards in shuffled order are read ``num_parallel_reads`` at a
    time, records shuffled in a ``shuffle_buffer``, then (``balanced=True``) the two class streams
    alternate real, fake, real, fake, ... so a batch of B holds B/2 of each and so does every
    contiguous, even-sized slice starting at an even row (both halves of the batch). Images are
    flipped horizontally at random unless ``flip=False``. ``balanced=False`` mixes all shards in
    one shuffled stream.

    Evaluation (``training=False``) reads real shards then fake shards in sorted order, every
    record exactly once, no shuffle, no flip; the last batch may be smaller. With
    ``balanced=True`` it alternates real and fake instead (2 x the smaller class's frames), so any
    prefix of even-sized batches holds both classes equally.

    Images are resized (bilinear, antialiased) when their stored size differs from
    ``image_size``. Elements are ``(images float32 (B, S, S, 3) in [0, 255], labels float32 (B,))``
    and, with ``with_metadata=True``, a third item ``{"video_id", "method", "dataset"}``
    (tf.string, (B,)) and ``"frame_index"`` (int64, (B,)).

    Args:
        records_dir: root of the records (holds the split directories).
        split: ``"train"``, ``"val"``, ``"test"``, ...
        batch_size: global batch size; balanced training needs a multiple of 4.
        training: training stream (True) or single deterministic pass (False).
        image_size: output side length in pixels.
        balanced: equal real/fake counts in every batch and batch half (default: for training
            only). With ``training=False``: real and fake frames alternate in sorted shard
            order until the smaller class is exhausted, the same frames on every call.
        with_metadata: also yield the metadata dict (for evaluation and prediction).
        shuffle_buffer: records held per class stream for shuffling (training).
        seed: fixes shard order, shuffling and flips; with a seed the training stream is
            reproducible (the pipeline then runs in deterministic mode, slightly slower).
        num_parallel_reads: shards open at a time per class stream (training), read in
            parallel.
        check_shards: scan every shard's record framing first, and check each shard's record
            count while reading, so corrupt shards fail naming the file. Turn off only for
            remote storage where the per-record seeks are slow.
        flip: mirror each training image left-right with probability 1/2 (an augmentation the
            paper does not mention; ``train --no-flip`` turns it off). The coin of each record
            is drawn whether or not it is used, so ``flip=False`` yields the same records in
            the same order as ``flip=True`` with the same seed, only unmirrored. Evaluation
            passes never flip.

    Returns:
        A ``tf.data.Dataset``, prefetched.

    Raises:
        FileNotFoundError: missing split directory, no shard at all, or (training) a class
            without shards or records.
        CorruptShardError: a shard fails the header scan (truncated, garbage), or the first
            record, read to learn the stored image size, fails its checksum.
        ValueError: bad arguments, e.g. a batch size that cannot be balanced.

    Example:

    ```python
    train = make_dataset("records/ffpp", "train", batch_size=16)
    model.fit(train, steps_per_epoch=1000,
              validation_data=make_dataset("records/ffpp", "val", training=False))
    ```
    """
    if balanced is None:
        balanced = training
    _check_arguments(split, batch_size, training, image_size, balanced, shuffle_buffer,
                     num_parallel_reads, flip)
    deterministic = (not training) or seed is not None
    finish = _finisher(with_metadata)

    def files_of(label_name: str | None) -> tuple[list[str], list[int]]:
        paths = list_shards(records_dir, split, label_name)
        counts = [scan_shard(p) for p in paths] if check_shards else [-1] * len(paths)
        if training and check_shards and sum(counts) == 0:
            # An endless stream over empty files would hang instead of failing.
            raise FileNotFoundError(f"the {label_name or 'real/fake'} shards of "
                                    f"{os.path.join(os.fspath(records_dir), split)} hold no record")
        return paths, counts

    def decoder(paths: list[str]):
        stored = _stored_size(paths)
        resize = stored is not None and stored != (image_size, image_size)
        if resize:
            logger.info("%s: resizing the stored %s crops to %d px", split, stored, image_size)
        return _decoder(image_size, resize, flip=training and flip, with_metadata=with_metadata)

    def reader(path, expected, class_id):
        return _read_shard(path, expected if check_shards else -1, class_id)

    def decode_and_batch(records, paths, randoms, drop_remainder):
        decode = decoder(paths)
        ds = tf.data.Dataset.zip(records, randoms).map(
            lambda record, rand: decode(*record, rand), num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(finish)  # one cast per batch: cheap, a parallel stage would only add threads
        return ds.prefetch(AUTOTUNE)

    if not training:
        if balanced:
            # Real, fake, real, ... in sorted shard order, until the smaller class ends: every
            # batch and batch half holds both classes, the same frames on every call.
            classes = [files_of(name) for name in schema.LABEL_NAMES]
            streams = [_files(p, c).flat_map(reader) for p, c in classes]
            records = tf.data.Dataset.choose_from_datasets(
                streams, tf.data.Dataset.range(2).repeat(), stop_on_empty_dataset=True)
            paths = classes[0][0] + classes[1][0]
        else:
            paths, counts = files_of(None)
            records = _files(paths, counts).flat_map(reader)
        randoms = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat()
        return decode_and_batch(records, paths, randoms, drop_remainder=False)

    def stream(label_name: str | None, stream_seed: int | None):
        paths, counts = files_of(label_name)
        files = _files(paths, counts).shuffle(len(paths), seed=stream_seed).repeat()
        reads = min(num_parallel_reads, len(paths))
        records = files.interleave(
            reader, cycle_length=reads, block_length=1, num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        return records.shuffle(shuffle_buffer, seed=stream_seed), paths

    def seed_for(offset: int) -> int | None:
        return None if seed is None else seed + offset

    if balanced:
        # Alternating real, fake, ... makes every even-sized slice at an even offset balanced.
        (real, real_paths), (fake, fake_paths) = stream("real", seed_for(0)), stream(
            "fake", seed_for(1))
        choice = tf.data.Dataset.range(2).repeat()
        records = tf.data.Dataset.choose_from_datasets([real, fake], choice)
        paths = real_paths + fake_paths
    else:
        records, paths = stream(None, seed_for(0))
    randoms = tf.data.Dataset.random(seed=seed_for(2))
    return decode_and_batch(records, paths, randoms, drop_remainder=True)

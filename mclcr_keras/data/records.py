"""The shards of a records folder: where they are, how many records they hold, whether they are
whole.

``<records_dir>/<split>/<real|fake>-NNNNN-of-NNNNN.tfrecord`` (names: `mclcr_keras.data.schema`).
`scan_shard` walks a shard's record headers (12 bytes per record) and checks their checksums, so a
truncated or foreign file fails naming the file before any training starts; `count_records` sums
the scans per class. Local paths and TensorFlow file systems (``gs://`` ...) alike.

Example:

```python
list_shards("records/ffpp", "val", "fake")[:1]  # ['records/ffpp/val/fake-00000-of-00002.tfrecord']
count_records("records/ffpp", "train")          # {'real': 21600, 'fake': 86400}
```
"""

from __future__ import annotations

import functools
import logging
import os
import struct

import tensorflow as tf

from mclcr_keras.data import schema

logger = logging.getLogger(__name__)

CORRUPT_SHARD_MESSAGE = "corrupt TFRecord shard"


class CorruptShardError(OSError):
    """A shard is not a complete TFRecord file; the message names the file."""


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of ``data``; used on the 8-byte length fields only."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open(path: str):
    return tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb")


def _file_signature(path: str) -> tuple[int, int]:
    if "://" in path:
        stat = tf.io.gfile.stat(path)
        return stat.length, stat.mtime_nsec
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=65536)
def _scan_cached(path: str, size: int, mtime_ns: int) -> int:
    del mtime_ns  # part of the cache key only: a rewritten file is scanned again
    count = 0
    offset = 0
    with _open(path) as f:
        while offset < size:
            if size - offset < 12:
                raise CorruptShardError(
                    f"{CORRUPT_SHARD_MESSAGE} {path}: truncated record header at byte {offset} "
                    f"of {size}"
                )
            f.seek(offset)
            header = f.read(12)
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if _masked_crc32c(header[:8]) != length_crc:
                raise CorruptShardError(
                    f"{CORRUPT_SHARD_MESSAGE} {path}: bad record header at byte {offset} "
                    "(is this a TFRecord file?)"
                )
            end = offset + 12 + length + 4
            if end > size:
                raise CorruptShardError(
                    f"{CORRUPT_SHARD_MESSAGE} {path}: truncated record at byte {offset} "
                    f"(needs {end} bytes, the file has {size})"
                )
            offset = end
            count += 1
    return count


def scan_shard(path: str | os.PathLike) -> int:
    """Checks a shard's record framing (lengths and their checksums) and returns its record count.

    Reads 12 bytes per record (the payload checksums are verified while reading, see
    `make_dataset`), so a 200 MB shard of 256 px PNG faces takes milliseconds. Results are cached
    per (path, size, mtime).

    Raises:
        CorruptShardError: truncated file or garbage bytes; the message names the file.

    Example:

    ```python
    scan_shard("records/ffpp/train/real-00000-of-00004.tfrecord")  # 1800
    ```
    """
    path = os.fspath(path)
    size, mtime_ns = _file_signature(path)
    return _scan_cached(path, size, mtime_ns)


def list_shards(
    records_dir: str | os.PathLike, split: str, label_name: str | None = None
) -> list[str]:
    """Sorted shard paths of a split: one class, or real then fake when ``label_name`` is None.

    With ``label_name=None`` one class may be absent (e.g. an evaluation set of fakes only); it is
    logged. A named class must have shards.

    Raises:
        FileNotFoundError: the split directory is missing or holds no (such) shard; names the path.

    Example:

    ```python
    list_shards("records/ffpp", "val", "fake")[:1]  # ['records/ffpp/val/fake-00000-of-00002...']
    ```
    """
    split_dir = os.path.join(os.fspath(records_dir), split)
    if not tf.io.gfile.isdir(split_dir):
        raise FileNotFoundError(f"split directory not found: {split_dir}")
    names = schema.LABEL_NAMES if label_name is None else (label_name,)
    paths: list[str] = []
    for name in names:
        found = sorted(tf.io.gfile.glob(schema.shard_pattern(records_dir, split, name)))
        if not found:
            logger.warning("no %s shards in %s", name, split_dir)
        totals = {schema.parse_shard_name(p)[2] for p in found}
        if len(totals) == 1 and len(found) != next(iter(totals)):
            logger.warning("%s: found %d %s shards, their names say %d", split_dir, len(found),
                           name, next(iter(totals)))
        paths.extend(found)
    if not paths:
        wanted = "/".join(names)
        raise FileNotFoundError(
            f"no {wanted} shards (<{wanted}>-NNNNN-of-NNNNN.tfrecord) in {split_dir}"
        )
    return paths


def count_records(records_dir: str | os.PathLike, split: str) -> dict[str, int]:
    """Number of records per class in a split, from the header scan: ``{"real": n, "fake": m}``.

    Example:

    ```python
    counts = count_records("records/ffpp", "train")
    steps_per_epoch = 2 * counts["fake"] // 16
    ```
    """
    counts = dict.fromkeys(schema.LABEL_NAMES, 0)
    for path in list_shards(records_dir, split):
        counts[schema.parse_shard_name(path)[0]] += scan_shard(path)
    return counts

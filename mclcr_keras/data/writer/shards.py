"""Crash-safe sharded TFRecord writing: one stream of shards per (split, class), a journal, and
the final rename to ``<split>/<label>-NNNNN-of-NNNNN.tfrecord``.

How a build survives ``kill -9`` (see ``docs/build_records.md``):

1. Records of a stream go to ``WORK/shards/<split>/<label>-<seq>.tfrecord.tmp``. A video's frames
   are never split between shards; a shard is closed after the video that takes it past the
   target size.
2. Closing a shard: flush, fsync, rename to ``...-<seq>.tfrecord``, then append one line to
   ``WORK/journal.jsonl`` (fsync'ed) holding the shard and the manifest/video rows of its videos.
   Inputs that yield no record are journaled at once (``"failed"`` lines).
3. A video is done once its journal line exists. On resume, unjournaled shard files and ``.tmp``
   files are deleted and the videos not done are converted again, in the same order: each stream
   receives the same videos in the same order as in an uninterrupted run, so the shards come out
   byte-identical.
4. `finalize` (once every input is done) writes a ``FINALIZING`` marker, renames the shards to
   their final names (now that the count per stream is known) and hands back the rows with final
   shard names. It is idempotent: an interrupted finalize is simply run again.

TensorFlow is imported only when a shard is opened (the writer runs in the parent process).

Example:

```python
journal = Journal("out/.work")
streams = ShardStreams("out/.work", journal, target_bytes=128 << 20)
streams.add_video("train", "fake", video_row, [(frame_row, serialized_example), ...])
streams.close()
frames, videos, failures, shards = finalize("out", "out/.work", journal, shard_name)
```
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence

from mclcr_keras.files import fsync_dir

logger = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
SHARDS = "shards"
FINALIZING = "FINALIZING"


class JournalError(RuntimeError):
    """The work directory is inconsistent (e.g. a journal line in the middle is corrupt)."""


class Journal:
    """Append-only record of closed shards and failed inputs in ``WORK/journal.jsonl``.

    Args:
        work_dir: the build's work directory (created if needed).

    Attributes:
        shards: journaled shard entries, in journal order.
        failed: journaled failure entries.
        done: keys (``dataset/method/video_id``) of every input that needs no more work.
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = os.path.join(work_dir, JOURNAL)
        os.makedirs(work_dir, exist_ok=True)
        self.shards: list[dict] = []
        self.failed: list[dict] = []
        self.done: set[str] = set()
        self._load()
        self._handle = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        good = 0
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if any(rest.strip() for rest in lines[number + 1:]):
                    raise JournalError(f"{self.path}: line {number + 1} is corrupt") from None
                logger.info("dropping the torn last line of %s", self.path)
                break
            self._remember(entry)
            good = number + 1
        # Rewrite without a torn tail, so appends start on a clean line.
        text = "".join(line + "\n" for line in lines[:good] if line.strip())
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _remember(self, entry: Mapping) -> None:
        if entry["type"] == "shard":
            self.shards.append(dict(entry))
            self.done.update(video["key"] for video in entry["videos"])
        elif entry["type"] == "failed":
            self.failed.append(dict(entry))
            self.done.add(entry["key"])
        else:
            raise JournalError(f"{self.path}: unknown entry type {entry['type']!r}")

    def append(self, entry: Mapping) -> None:
        """Appends one entry durably (flush + fsync) and remembers it."""
        self._handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._remember(entry)

    def close(self) -> None:
        self._handle.close()


class _Stream:
    """The open temporary shard of one (split, label)."""

    def __init__(self, directory: str, label: str, seq: int):
        import tensorflow as tf

        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.name = f"{label}-{seq:05d}.tfrecord"
        self.temporary = os.path.join(directory, self.name + ".tmp")
        self.writer = tf.io.TFRecordWriter(self.temporary)
        self.seq = seq
        self.bytes = 0
        self.records = 0
        self.videos: list[dict] = []
        self.frames: list[dict] = []

    def write(self, serialized: bytes) -> None:
        self.writer.write(serialized)
        self.bytes += len(serialized) + 16  # TFRecord framing: length, 2 CRCs
        self.records += 1

    def close(self) -> str:
        self.writer.flush()
        self.writer.close()
        with open(self.temporary, "rb") as handle:
            os.fsync(handle.fileno())
        final = os.path.join(self.directory, self.name)
        os.replace(self.temporary, final)
        fsync_dir(self.directory)
        return final


class ShardStreams:
    """Writes each (split, label) stream to size-bounded temporary shards and journals them.

    Args:
        work_dir: the build's work directory (``WORK``).
        journal: the build's `Journal`; on resume, shards it does not list are deleted.
        target_bytes: a shard is closed once it holds at least this many bytes (checked after
            each video, so a shard is at most one video larger).
    """

    def __init__(self, work_dir: str, journal: Journal, target_bytes: int):
        if target_bytes <= 0:
            raise ValueError(f"target_bytes must be > 0, got {target_bytes}")
        self.root = os.path.join(work_dir, SHARDS)
        self.journal = journal
        self.target_bytes = int(target_bytes)
        self._open: dict[tuple[str, str], _Stream] = {}
        self._next: dict[tuple[str, str], int] = {}
        self._recover()

    def _recover(self) -> None:
        """Deletes what a crash left behind and finds each stream's next sequence number."""
        journaled = set()
        for entry in self.journal.shards:
            journaled.add(entry["file"])
            stream = (entry["split"], entry["label"])
            self._next[stream] = max(self._next.get(stream, 0), entry["seq"] + 1)
        for entry in self.journal.shards:
            if not os.path.isfile(os.path.join(self.root, entry["file"])):
                raise JournalError(f"journaled shard {entry['file']} is missing from {self.root}")
        if not os.path.isdir(self.root):
            return
        for split in os.listdir(self.root):
            directory = os.path.join(self.root, split)
            for name in os.listdir(directory):
                relative = f"{split}/{name}"
                if relative not in journaled:
                    logger.info("removing unfinished shard %s", os.path.join(directory, name))
                    os.remove(os.path.join(directory, name))

    def add_video(
        self,
        split: str,
        label: str,
        video: Mapping,
        frames: Sequence[tuple[Mapping, bytes]],
    ) -> None:
        """Writes one video's serialized examples (all into the same shard).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            label: ``"real"`` or ``"fake"``.
            video: its ``videos.csv`` row; must hold ``"key"``.
            frames: ``(manifest_row, serialized_example)`` per frame, in frame order.
        """
        key = (split, label)
        stream = self._open.get(key)
        if stream is None:
            seq = self._next.get(key, 0)
            stream = self._open[key] = _Stream(os.path.join(self.root, split), label, seq)
            self._next[key] = seq + 1
        for row, serialized in frames:
            stream.write(serialized)
            stream.frames.append(dict(row))
        stream.videos.append(dict(video))
        if stream.bytes >= self.target_bytes:
            self._close(key)

    def add_failure(self, video: Mapping, failure: Mapping) -> None:
        """Journals an input that yields no record (its videos.csv and failures.csv rows)."""
        self.journal.append({"type": "failed", "key": video["key"], "video": dict(video),
                             "failure": dict(failure)})

    def _close(self, key: tuple[str, str]) -> None:
        stream = self._open.pop(key)
        stream.close()
        split, label = key
        self.journal.append({
            "type": "shard", "split": split, "label": label, "seq": stream.seq,
            "file": f"{split}/{stream.name}", "bytes": stream.bytes, "records": stream.records,
            "videos": stream.videos, "frames": stream.frames,
        })

    def close(self) -> None:
        """Closes and journals every open shard (at the end of the build)."""
        for key in sorted(self._open):
            self._close(key)


def finalize(
    out_dir: str,
    work_dir: str,
    journal: Journal,
    shard_name: Callable[[str, int, int], str],
) -> tuple[list[dict], list[dict], list[dict], dict[str, dict[str, list[str]]]]:
    """Renames the journaled shards to ``OUT/<split>/<label>-NNNNN-of-NNNNN.tfrecord``.

    Idempotent: a shard already renamed by an interrupted `finalize` is accepted.

    Args:
        out_dir: the output directory.
        work_dir: the work directory holding ``shards/`` and the journal.
        journal: the build's journal (complete: every input done).
        shard_name: ``mclcr_keras.data.schema.shard_name``.

    Returns:
        ``(frames, videos, failures, shards)``: manifest rows with the final ``shard`` column,
        videos.csv rows, failures.csv rows (each sorted deterministically), and
        ``{split: {label: [shard names]}}``.
    """
    marker = os.path.join(work_dir, FINALIZING)
    with open(marker, "w") as handle:  # from here on, shards leave the work directory
        handle.flush()
        os.fsync(handle.fileno())
    entries: dict[tuple[str, str], list[dict]] = {}
    for entry in journal.shards:
        entries.setdefault((entry["split"], entry["label"]), []).append(entry)
    frames: list[dict] = []
    videos: list[dict] = []
    shards: dict[str, dict[str, list[str]]] = {}
    for (split, label), stream in sorted(entries.items()):
        stream.sort(key=lambda e: e["seq"])
        if [e["seq"] for e in stream] != list(range(len(stream))):
            raise JournalError(f"shards of {split}/{label} are not numbered 0..{len(stream) - 1}")
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        for entry in stream:
            name = shard_name(label, entry["seq"], len(stream))
            source = os.path.join(work_dir, SHARDS, entry["file"])
            target = os.path.join(out_dir, split, name)
            if os.path.exists(source):
                os.replace(source, target)
            elif not os.path.exists(target):
                raise JournalError(f"shard {source} is missing and was never renamed to {target}")
            shards.setdefault(split, {}).setdefault(label, []).append(name)
            for row in entry["frames"]:
                frames.append(dict(row, shard=f"{split}/{name}"))
            videos.extend(entry["videos"])
        fsync_dir(os.path.join(out_dir, split))
    failures = [entry["failure"] for entry in journal.failed]
    videos.extend(entry["video"] for entry in journal.failed)
    videos.sort(key=lambda v: v["key"])
    failures.sort(key=lambda f: (f["input"], f["reason"]))
    return frames, videos, failures, shards


def is_finalizing(work_dir: str) -> bool:
    """True when a `finalize` started in ``work_dir`` (every input was done): run it again."""
    return os.path.exists(os.path.join(work_dir, FINALIZING))

"""Crash-safe shard streams: size-bounded shards, journal, recovery, final names."""

import os

import pytest
import tensorflow as tf

from mclcr_keras.data import schema
from mclcr_keras.data.writer import shards as shards_module
from mclcr_keras.data.writer.shards import Journal, JournalError, ShardStreams, finalize


def _videos(count: int, frames: int = 3, size: int = 400):
    """(split, label, video_row, [(frame_row, payload)]) with distinguishable payloads."""
    out = []
    for v in range(count):
        split = ("train", "val")[v % 2]
        label = ("real", "fake")[(v // 2) % 2]
        key = f"test/m/v{v:03d}"
        video = {"key": key, "split": split, "label": label, "status": "ok"}
        rows = [({"video_id": f"v{v:03d}", "frame_index": f, "split": split},
                 bytes([v % 256, f]) * (size // 2)) for f in range(frames)]
        out.append((split, label, video, rows))
    return out


def _build(work, out, videos, target=2000):
    journal = Journal(str(work))
    streams = ShardStreams(str(work), journal, target)
    for split, label, video, rows in videos:
        if video["key"] not in journal.done:
            streams.add_video(split, label, video, rows)
    streams.close()
    journal.close()
    return finalize(str(out), str(work), journal, schema.shard_name)


def _read(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def _tree(out):
    return {os.path.relpath(os.path.join(d, n), out): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(out) for n in names if n.endswith(".tfrecord")}


def test_streams_write_bounded_shards_with_final_names(tmp_path):
    videos = _videos(12)
    frames, rows, failures, shards = _build(tmp_path / "w", tmp_path / "out", videos)
    assert failures == []
    # 12 videos alternate over 4 streams: 3 videos of 3 x ~416 bytes each; a shard closes past
    # 2000 bytes, after its 2nd video -> 2 shards per stream.
    assert shards == {s: {lab: [schema.shard_name(lab, i, 2) for i in range(2)]
                          for lab in ("real", "fake")} for s in ("train", "val")}
    for split, label, video, payloads in videos:
        mine = [f for f in frames if f["video_id"] == video["key"].split("/")[-1]]
        assert len(mine) == 3 and len({f["shard"] for f in mine}) == 1  # never split
        records = _read(str(tmp_path / "out" / mine[0]["shard"]))
        assert [p for _, p in payloads] == [r for r in records if r in [p for _, p in payloads]]
    total = sum(len(_read(str(tmp_path / "out" / f["shard"]))) for f in
                {f["shard"]: f for f in frames}.values())
    assert total == len(frames) == 36
    assert [r["key"] for r in rows] == sorted(v[2]["key"] for v in videos)


def test_resume_after_crash_is_byte_identical(tmp_path):
    videos = _videos(12)
    _build(tmp_path / "w_ref", tmp_path / "ref", videos)
    reference = _tree(tmp_path / "ref")

    work = tmp_path / "w"
    journal = Journal(str(work))
    streams = ShardStreams(str(work), journal, 2000)
    for split, label, video, rows in videos[:7]:
        streams.add_video(split, label, video, rows)
    streams.add_failure({"key": "test/m/bad", "status": "failed"},
                        {"input": "bad.mp4", "reason": "empty file (0 bytes)"})
    done_before = set(journal.done)
    journal.close()  # crash: open shards are abandoned as .tmp files
    for stream in streams._open.values():
        stream.writer.flush()
    leftovers = [n for _, _, names in os.walk(work) for n in names if n.endswith(".tmp")]
    assert leftovers
    with open(work / "journal.jsonl", "a") as handle:
        handle.write('{"type": "shard", "split": "tr')  # torn last line
    del streams

    journal = Journal(str(work))
    assert journal.done == done_before and "test/m/bad" in journal.done
    assert 0 < len([k for k in journal.done if k.startswith("test/m/v")]) < 7
    # Recovery leaves exactly the journaled shards in the work directory (no .tmp, no stray).
    ShardStreams(str(work), journal, 2000)
    on_disk = sorted(f"{d.name}/{f.name}" for d in (work / "shards").iterdir() for f in d.iterdir())
    assert on_disk == sorted(entry["file"] for entry in journal.shards) and on_disk
    journal.close()
    frames, rows, failures, shards = _build(work, tmp_path / "out", videos)
    assert _tree(tmp_path / "out") == reference
    assert failures == [{"input": "bad.mp4", "reason": "empty file (0 bytes)"}]
    assert len(frames) == 36 and len({(f["video_id"], f["frame_index"]) for f in frames}) == 36


def test_unjournaled_shard_is_removed(tmp_path):
    work = tmp_path / "w"
    journal = Journal(str(work))
    stray = work / "shards" / "train" / "real-00000.tfrecord"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"renamed but never journaled")
    ShardStreams(str(work), journal, 1000)
    assert not stray.exists()


def test_corrupt_journal_and_missing_shard_are_errors(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "journal.jsonl").write_text('{"type": "failed"\n{"type": "failed", "key": "k", '
                                        '"video": {}, "failure": {}}\n')
    with pytest.raises(JournalError, match="line 1 is corrupt"):
        Journal(str(work))
    (work / "journal.jsonl").write_text(
        '{"type": "shard", "split": "train", "label": "real", "seq": 0, '
        '"file": "train/real-00000.tfrecord", "videos": [], "frames": []}\n')
    with pytest.raises(JournalError, match="train/real-00000.tfrecord is missing"):
        ShardStreams(str(work), Journal(str(work)), 1000)
    with pytest.raises(ValueError, match="target_bytes must be > 0, got 0"):
        ShardStreams(str(work / "x"), Journal(str(work / "x")), 0)


def test_interrupted_finalize_runs_again(tmp_path, monkeypatch):
    videos = _videos(8)
    _build(tmp_path / "w_ref", tmp_path / "ref", videos)
    work = tmp_path / "w"
    journal = Journal(str(work))
    streams = ShardStreams(str(work), journal, 2000)
    for split, label, video, rows in videos:
        streams.add_video(split, label, video, rows)
    streams.close()
    journal.close()
    real_replace, calls = os.replace, []

    def flaky_replace(source, target):
        calls.append(source)
        if len(calls) == 2:
            raise OSError("disk went away")
        real_replace(source, target)

    monkeypatch.setattr(shards_module.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk went away"):
        finalize(str(tmp_path / "out"), str(work), journal, schema.shard_name)
    monkeypatch.setattr(shards_module.os, "replace", real_replace)
    assert shards_module.is_finalizing(str(work))
    journal = Journal(str(work))
    frames, _, _, _ = finalize(str(tmp_path / "out"), str(work), journal, schema.shard_name)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "ref") and len(frames) == 24

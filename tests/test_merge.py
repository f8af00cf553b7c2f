"""Merging the outputs of --num-partitions runs (`mclcr_keras.data.writer.merge`), on partition
folders written here with the real table writers and stand-in shard files."""

import os

import pytest
from test_tables import _frame, _video

from mclcr_keras.data import schema
from mclcr_keras.data.writer import merge, tables
from mclcr_keras.data.writer.merge import MergeError


def _final_shards(out) -> list[str]:
    """``<split>/<name>`` of every shard file under a merged output."""
    return sorted(f"{split.name}/{shard.name}" for split in out.iterdir() if split.is_dir()
                  for shard in split.glob("*.tfrecord"))


def _partition(out, index, count, shards):
    """A finished partition with fake shard files: shards = {(split, label): [n_frames, ...]}."""
    part = merge.partition_dir(str(out), index, count)
    frames, videos, names = [], [], {}
    for (split, label), sizes in shards.items():
        os.makedirs(os.path.join(part, split), exist_ok=True)
        for number, size in enumerate(sizes):
            name = schema.shard_name(label, number, len(sizes))
            names.setdefault(split, {}).setdefault(label, []).append(name)
            with open(os.path.join(part, split, name), "w") as handle:
                handle.write(f"p{index} {split} {name}")
            vid = f"p{index}-{split}-{label}-{number}"
            frames += [dict(_frame(split, int(label == "fake"), "m", vid, i),
                            shard=f"{split}/{name}") for i in range(size)]
            videos.append(_video(split, int(label == "fake"), "m", vid, size, size))
    failures = [{"input": f"bad{index}.mp4", "reason": "empty file (0 bytes)"}]
    info = tables.dataset_info(frames, videos, failures, names,
                               {"partition": index, "num_partitions": count}, 1)
    tables.write_tables(part, frames, videos, failures, info)


def test_merge_renumbers_shards_in_partition_order(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _partition(out, 0, 2, {("train", "real"): [2, 1], ("train", "fake"): [3]})
    _partition(out, 1, 2, {("train", "real"): [1], ("val", "fake"): [2]})
    real_write = merge.write_tables
    monkeypatch.setattr(merge, "write_tables", lambda *a: (_ for _ in ()).throw(
        OSError("node lost")))
    with pytest.raises(OSError, match="node lost"):  # after the shards moved
        merge.merge_partitions(str(out), schema.shard_name)
    assert (out / ".merge-plan.json").exists()
    monkeypatch.setattr(merge, "write_tables", real_write)
    info = merge.merge_partitions(str(out), schema.shard_name)  # finishes the merge
    assert info["shards"] == {
        "train": {"fake": ["fake-00000-of-00001.tfrecord"],
                  "real": [schema.shard_name("real", i, 3) for i in range(3)]},
        "val": {"fake": ["fake-00000-of-00001.tfrecord"]}}
    # A file holds "<partition> <split> <its name in the partition>": renumbered in partition order.
    assert {name: (out / name).read_text() for name in _final_shards(out)} == {
        "train/fake-00000-of-00001.tfrecord": "p0 train fake-00000-of-00001.tfrecord",
        "train/real-00000-of-00003.tfrecord": "p0 train real-00000-of-00002.tfrecord",
        "train/real-00001-of-00003.tfrecord": "p0 train real-00001-of-00002.tfrecord",
        "train/real-00002-of-00003.tfrecord": "p1 train real-00000-of-00001.tfrecord",
        "val/fake-00000-of-00001.tfrecord": "p1 val fake-00000-of-00001.tfrecord"}
    rows = tables.read_csv(str(out / "manifest.csv"))
    assert len(rows) == 9 and sorted({r["shard"] for r in rows}) == _final_shards(out)
    for row in rows:  # the rewritten shard column points at the file holding the frame
        part, split, label, number = row["video_id"].split("-")
        origin = f"{part} {split} {label}-{int(number):05d}-of-"
        assert (out / row["shard"]).read_text().startswith(origin), row
    assert [r["shard"] for r in rows if r["video_id"] == "p1-train-real-0"] == \
        ["train/real-00002-of-00003.tfrecord"]
    assert len(tables.read_csv(str(out / "failures.csv"))) == 2
    assert info["counts"]["totals"]["frames"] == 9 and info["counts"]["totals"]["failed"] == 2
    assert "partition" not in info["arguments"] and info["arguments"]["merged_partitions"] == 2
    assert not (out / "parts").exists() and not (out / ".merge-plan.json").exists()
    with pytest.raises(MergeError, match="already holds a merged output"):
        merge.merge_partitions(str(out), schema.shard_name)


def test_merge_refuses_unfinished_or_missing_partitions(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(MergeError, match="no partitions to merge"):
        merge.merge_partitions(str(out), schema.shard_name)
    _partition(out, 0, 2, {("train", "real"): [1]})
    with pytest.raises(MergeError, match=r"missing partition\(s\) \[1\] of 2"):
        merge.merge_partitions(str(out), schema.shard_name)
    _partition(out, 1, 2, {("train", "real"): [1]})
    os.makedirs(os.path.join(merge.partition_dir(str(out), 1, 2), ".work"))
    with pytest.raises(MergeError, match="not finished .*part-00001-of-00002"):
        merge.merge_partitions(str(out), schema.shard_name)

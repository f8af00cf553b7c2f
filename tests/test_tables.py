"""manifest.csv / videos.csv / failures.csv / dataset.json and the merge of partitions."""

import os

import pytest

from mclcr_keras.data import manifest, schema
from mclcr_keras.data.manifest import MergeError


def test_box_and_landmark_round_trip():
    assert manifest.format_box((10.4, 20, 110.6, 120)) == "10 20 111 120"
    assert manifest.parse_box("10 20 111 120") == (10, 20, 111, 120)
    points = [(1.25, 2.0), (3.0, 4.5)]
    assert manifest.format_landmarks(points) == "1.2 2.0 3.0 4.5"
    assert manifest.parse_landmarks("1.2 2.0 3.0 4.5") == [(1.2, 2.0), (3.0, 4.5)]
    assert manifest.format_box(None) == "" and manifest.parse_box("") is None
    assert manifest.parse_landmarks(" ") is None


def test_csv_round_trip_is_atomic(tmp_path):
    rows = [{"input": "a, b.mp4", "reason": 'say "no"', "extra": 1}, {"input": "c.mp4"}]
    path = str(tmp_path / "failures.csv")
    manifest.write_csv(path, ("input", "reason"), rows)
    assert manifest.read_csv(path) == [{"input": "a, b.mp4", "reason": 'say "no"'},
                                       {"input": "c.mp4", "reason": ""}]
    assert os.listdir(tmp_path) == ["failures.csv"]


def _frame(split, label, method, vid, index):
    return {"split": split, "label": label, "method": method, "video_id": vid,
            "frame_index": index}


def _video(split, label, method, vid, sampled, with_face, status="ok"):
    return {"split": split, "label": label, "method": method, "video_id": vid,
            "frames_sampled": sampled, "frames_with_face": with_face, "status": status}


def test_summarize_counts():
    frames = [_frame("train", 0, "original", "a", i) for i in range(3)] + \
        [_frame("train", "1", "Deepfakes", "b", i) for i in range(2)] + \
        [_frame("val", "1", "Deepfakes", "c", 0)]
    videos = [_video("train", 0, "original", "a", 4, 3), _video("train", 1, "Deepfakes", "b", 2, 2),
              _video("val", 1, "Deepfakes", "c", 3, 1),
              _video("val", 1, "Deepfakes", "d", 3, 0, "failed")]
    counts = manifest.summarize(frames, videos, [{"input": "d.mp4"}])
    assert counts["frames"] == {"train": {"fake": {"Deepfakes": 2}, "real": {"original": 3}},
                                "val": {"fake": {"Deepfakes": 1}}}
    assert counts["videos"] == {"train": {"fake": {"Deepfakes": 1}, "real": {"original": 1}},
                                "val": {"fake": {"Deepfakes": 1}}}
    assert counts["totals"] == {"frames": 6, "videos": 3, "failed": 1, "frames_sampled": 12,
                                "frames_without_face": 6}


def test_library_versions_from_metadata():
    versions = manifest.library_versions()
    assert versions["numpy"] == __import__("numpy").__version__
    assert versions["tensorflow"] == __import__("tensorflow").__version__
    assert versions["opencv"] and versions["dlib"] and versions["keras"]


def _partition(out, index, count, shards):
    """A finished partition with fake shard files: shards = {(split, label): [n_frames, ...]}."""
    part = manifest.partition_dir(str(out), index, count)
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
    info = manifest.dataset_info(frames, videos, failures, names,
                                 {"partition": index, "num_partitions": count}, 1)
    manifest.write_tables(part, frames, videos, failures, info)


def test_merge_renumbers_shards_in_partition_order(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _partition(out, 0, 2, {("train", "real"): [2, 1], ("train", "fake"): [3]})
    _partition(out, 1, 2, {("train", "real"): [1], ("val", "fake"): [2]})
    real_write = manifest.write_tables
    monkeypatch.setattr(manifest, "write_tables", lambda *a: (_ for _ in ()).throw(
        OSError("node lost")))
    with pytest.raises(OSError, match="node lost"):  # after the shards moved
        manifest.merge_partitions(str(out), schema.shard_name)
    assert (out / ".merge-plan.json").exists()
    monkeypatch.setattr(manifest, "write_tables", real_write)
    info = manifest.merge_partitions(str(out), schema.shard_name)  # finishes the merge
    assert info["shards"] == {
        "train": {"fake": ["fake-00000-of-00001.tfrecord"],
                  "real": [schema.shard_name("real", i, 3) for i in range(3)]},
        "val": {"fake": ["fake-00000-of-00001.tfrecord"]}}
    assert (out / "train" / "real-00002-of-00003.tfrecord").read_text() == \
        "p1 train real-00000-of-00001.tfrecord"
    rows = manifest.read_csv(str(out / "manifest.csv"))
    assert len(rows) == 9 and {r["shard"] for r in rows} == set(manifest.list_final_shards(
        str(out)))
    assert [r["shard"] for r in rows if r["video_id"] == "p1-train-real-0"] == \
        ["train/real-00002-of-00003.tfrecord"]
    assert len(manifest.read_csv(str(out / "failures.csv"))) == 2
    assert info["counts"]["totals"]["frames"] == 9 and info["counts"]["totals"]["failed"] == 2
    assert "partition" not in info["arguments"] and info["arguments"]["merged_partitions"] == 2
    assert not (out / "parts").exists() and not (out / ".merge-plan.json").exists()
    with pytest.raises(MergeError, match="already holds a merged output"):
        manifest.merge_partitions(str(out), schema.shard_name)


def test_merge_refuses_unfinished_or_missing_partitions(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(MergeError, match="no partitions to merge"):
        manifest.merge_partitions(str(out), schema.shard_name)
    _partition(out, 0, 2, {("train", "real"): [1]})
    with pytest.raises(MergeError, match=r"missing partition\(s\) \[1\] of 2"):
        manifest.merge_partitions(str(out), schema.shard_name)
    _partition(out, 1, 2, {("train", "real"): [1]})
    os.makedirs(os.path.join(manifest.partition_dir(str(out), 1, 2), ".work"))
    with pytest.raises(MergeError, match="not finished .*part-00001-of-00002"):
        manifest.merge_partitions(str(out), schema.shard_name)

"""The tables beside the shards: tables.csv, videos.csv, failures.csv and dataset.json."""

import json
import os

from mclcr_keras.data.writer import tables


def test_box_and_landmark_round_trip():
    assert tables.format_box((10.4, 20, 110.6, 120)) == "10 20 111 120"
    assert tables.parse_box("10 20 111 120") == (10, 20, 111, 120)
    points = [(1.25, 2.0), (3.0, 4.5)]
    assert tables.format_landmarks(points) == "1.2 2.0 3.0 4.5"
    assert tables.parse_landmarks("1.2 2.0 3.0 4.5") == [(1.2, 2.0), (3.0, 4.5)]
    assert tables.format_box(None) == "" and tables.parse_box("") is None
    assert tables.parse_landmarks(" ") is None


def test_csv_round_trip_is_atomic(tmp_path):
    rows = [{"input": "a, b.mp4", "reason": 'say "no"', "extra": 1}, {"input": "c.mp4"}]
    path = str(tmp_path / "failures.csv")
    tables.write_csv(path, ("input", "reason"), rows)
    assert tables.read_csv(path) == [{"input": "a, b.mp4", "reason": 'say "no"'},
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
    counts = tables.summarize(frames, videos, [{"input": "d.mp4"}])
    assert counts["frames"] == {"train": {"fake": {"Deepfakes": 2}, "real": {"original": 3}},
                                "val": {"fake": {"Deepfakes": 1}}}
    assert counts["videos"] == {"train": {"fake": {"Deepfakes": 1}, "real": {"original": 1}},
                                "val": {"fake": {"Deepfakes": 1}}}
    assert counts["totals"] == {"frames": 6, "videos": 3, "failed": 1, "frames_sampled": 12,
                                "frames_without_face": 6}


def test_library_versions_from_metadata():
    versions = tables.library_versions()
    assert versions["numpy"] == __import__("numpy").__version__
    assert versions["tensorflow"] == __import__("tensorflow").__version__
    assert versions["opencv"] and versions["dlib"] and versions["keras"]


def test_write_tables_then_read_back(tmp_path):
    frames = [dict(_frame("train", 1, "Deepfakes", "000_003", i), dataset="ffpp",
                   compression="c23", shard="train/fake-00000-of-00001.tfrecord",
                   box=tables.format_box((1, 2, 30, 40)), landmarks="") for i in range(2)]
    videos = [dict(_video("train", 1, "Deepfakes", "000_003", 3, 2), dataset="ffpp",
                   compression="c23", input="/d/000_003.mp4", key="ffpp/Deepfakes/000_003")]
    failures = [{"input": "/d/bad.mp4", "reason": "empty file (0 bytes)", "split": "val",
                 "label": 0, "dataset": "ffpp", "method": "original", "video_id": "bad"}]
    shards = {"train": {"fake": ["fake-00000-of-00001.tfrecord"]}}
    info = tables.dataset_info(frames, videos, failures, shards, {"frames": 3}, 1)
    tables.write_tables(str(tmp_path), frames, videos, failures, info)
    assert sorted(os.listdir(tmp_path)) == ["dataset.json", "failures.csv", "manifest.csv",
                                            "videos.csv"]
    manifest = tables.read_csv(str(tmp_path / tables.MANIFEST))
    assert [list(row) for row in manifest] == [list(tables.MANIFEST_COLUMNS)] * 2
    assert [(r["video_id"], r["frame_index"], r["box"], r["label"]) for r in manifest] == \
        [("000_003", "0", "1 2 30 40", "1"), ("000_003", "1", "1 2 30 40", "1")]
    (video,) = tables.read_csv(str(tmp_path / tables.VIDEOS))
    assert list(video) == list(tables.VIDEO_COLUMNS) and "key" not in video
    assert (video["input"], video["frames_sampled"], video["status"]) == ("/d/000_003.mp4", "3",
                                                                           "ok")
    assert tables.read_csv(str(tmp_path / tables.FAILURES)) == [
        {k: str(v) for k, v in failures[0].items()}]
    written = json.loads((tmp_path / tables.DATASET_JSON).read_text())
    assert written == info
    assert written["schema_version"] == 1 and written["shards"] == shards
    assert written["counts"]["totals"] == {"frames": 2, "videos": 1, "failed": 1,
                                           "frames_sampled": 3, "frames_without_face": 1}
    assert written["arguments"] == {"frames": 3}

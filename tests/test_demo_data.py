"""The demo dataset: layout for build_records' folder source, real faces in every frame, seeds."""

import json

import cv2
import numpy as np
import pytest

from mclcr_keras import demo_data
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.data.sources import list_items
from mclcr_keras.data.splits import SPLITS
from mclcr_keras.demo.data import make_demo_folder
from mclcr_keras.demo.sbi import SelfBlendConfig

VIDEOS, FRAMES, SIZE = 2, 2, 256


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "faces"
    out = make_demo_folder(root, videos_per_class=VIDEOS, frames_per_video=FRAMES,
                                     image_size=SIZE, seed=0)
    assert out == root
    return root


def frames_of(root):
    return sorted(root.glob("*/*/*/*.png"))


def test_layout_counts_and_labels(demo):
    assert sorted(p.name for p in demo.iterdir()) == ["demo_data.json", "test", "train", "val"]
    for split in SPLITS:
        for cls in LABEL_NAMES:
            videos = sorted((demo / split / cls).iterdir())
            assert len(videos) == VIDEOS
            for video in videos:
                assert video.name.startswith(f"{split}-")
                assert video.name.endswith("-sbi") == (cls == "fake")
                assert sorted(p.name for p in video.iterdir()) == ["0000.png", "0001.png"]
    assert len(frames_of(demo)) == 3 * 2 * VIDEOS * FRAMES
    info = json.loads((demo / "demo_data.json").read_text())
    assert len(info["videos"]) == 3 * 2 * VIDEOS
    assert all((demo / v["split"] / v["label"] / v["video_id"]).is_dir() for v in info["videos"])
    # Both classes use the same identities in every split.
    for split in SPLITS:
        by_class = {c: sorted(v["source"] for v in info["videos"]
                              if v["split"] == split and v["label"] == c)
                    for c in LABEL_NAMES}
        assert by_class["real"] == by_class["fake"]
    assert "public domain" in info["sources"]["grace_hopper"]
    assert info["sbi_config"]["blend_ratios"] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_folder_source_reads_it(demo):
    items = list_items("folder", str(demo))
    assert len(items) == 3 * 2 * VIDEOS
    for item in items:
        assert item.kind == "frames" and len(item.paths) == FRAMES
        assert item.label == (1 if item.method == "fake" else 0)
        assert item.video_id.startswith(item.split + "-")


def test_frames_are_pngs_with_one_dlib_face(demo):
    aligner = FaceAligner()
    checked = 0
    for path in frames_of(demo):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None and bgr.shape == (SIZE, SIZE, 3)
        if "/test/" in path.as_posix():  # spot check: every frame of the test split
            boxes = aligner.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            assert len(boxes) == 1, path
            side = boxes[0][2] - boxes[0][0]
            assert 0.2 * SIZE < side < 0.6 * SIZE, (path, boxes)
            checked += 1
    assert checked == 2 * VIDEOS * FRAMES


def test_videos_differ_and_frames_move(demo):
    firsts = [cv2.imread(str(v / "0000.png")) for v in sorted(demo.glob("*/*/*")) if v.is_dir()]
    for i in range(len(firsts)):
        for j in range(i + 1, len(firsts)):
            assert not np.array_equal(firsts[i], firsts[j])
    video = demo / "train" / "real" / sorted(p.name for p in (demo / "train" / "real").iterdir())[0]
    a, b = (cv2.imread(str(video / f)).astype(int) for f in ("0000.png", "0001.png"))
    assert np.abs(a - b).mean() > 2.0  # motion, not only noise


def test_same_seed_same_bytes_other_seed_differs(demo, tmp_path):
    again = make_demo_folder(tmp_path / "again", videos_per_class=VIDEOS,
                                       frames_per_video=FRAMES, image_size=SIZE, seed=0)
    for a, b in zip(frames_of(demo), frames_of(again), strict=True):
        assert a.relative_to(demo) == b.relative_to(again)
        assert a.read_bytes() == b.read_bytes()
    other = make_demo_folder(tmp_path / "other", videos_per_class=1,
                                       frames_per_video=1, image_size=SIZE, seed=1)
    first = other / "train" / "real" / "train-grace_hopper-00" / "0000.png"
    same_place = demo / "train" / "real" / "train-grace_hopper-00" / "0000.png"
    assert first.read_bytes() != same_place.read_bytes()


def test_refuses_to_overwrite_and_bad_arguments(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo folder"):
        make_demo_folder(busy, overwrite=True)
    assert (busy / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="videos_per_class must be >= 1, got 0"):
        make_demo_folder(tmp_path / "x", videos_per_class=0)
    with pytest.raises(ValueError, match="image_size must be >= 128, got 64"):
        make_demo_folder(tmp_path / "x", image_size=64)
    assert demo_data.main([str(busy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo_data: error: ") and "not empty" in err[0]
    assert demo_data.main([str(tmp_path / "y"), "--size", "64"]) == 2
    assert capsys.readouterr().err.strip() == \
        "demo_data: error: image_size must be >= 128, got 64"
    assert demo_data.main([str(tmp_path / "y"), "--frames-per-video", "two"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo_data: error: argument --frames-per-video")
    assert not (tmp_path / "y").exists()


def test_cli_writes_and_overwrites_demo_folder(tmp_path, capsys):
    assert demo_data.main(["--help"]) == 0
    assert "--videos-per-class" in capsys.readouterr().out
    out = tmp_path / "cli"
    args = [str(out), "--videos-per-class", "1", "--frames-per-video", "1", "--size", "160"]
    assert demo_data.main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert len(frames_of(out)) == 6
    assert demo_data.main(args) == 2  # exists
    assert demo_data.main(args + ["--overwrite", "--seed", "3"]) == 0
    assert json.loads((out / "demo_data.json").read_text())["seed"] == 3
    assert not (tmp_path / "cli.partial").exists()


def test_sbi_config_changes_only_the_fakes(tmp_path):
    kwargs = dict(videos_per_class=1, frames_per_video=1, image_size=192, seed=4)
    default = make_demo_folder(tmp_path / "a", **kwargs)
    strong = make_demo_folder(
        tmp_path / "b", sbi_config=SelfBlendConfig(blend_ratios=(1.0,), rgb_shift_p=1.0), **kwargs)
    for a, b in zip(frames_of(default), frames_of(strong), strict=True):
        same = a.read_bytes() == b.read_bytes()
        assert same == ("/real/" in a.as_posix()), a
    info = json.loads((strong / "demo_data.json").read_text())
    assert info["sbi_config"]["blend_ratios"] == [1.0]

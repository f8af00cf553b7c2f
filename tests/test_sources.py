"""Dataset layouts -> items: labels, methods, video ids and split rules (no decoding here).

Expected splits never come from `mclcr_keras.data.splits`: they are the official FF++ split files,
values pinned here, or `reference_split`, written from the rule of docs/build_records.md ("SHA-1
of a string": the first 8 bytes of the digest, big-endian, over 2**64, cut at 0.72 / 0.86).
"""

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mclcr_keras.data import sources, splits
from mclcr_keras.data.sources import SourceError, list_items
from mclcr_keras.data.sources.celebdf import read_celebdf_test_list


def reference_fraction(key: str) -> float:
    """The documented hash rule, written independently of `mclcr_keras.data.splits`."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2**64


def reference_split(key: str, fractions=(0.72, 0.14, 0.14)) -> str:
    value = reference_fraction(key)
    if value < fractions[0]:
        return "train"
    return "val" if value < fractions[0] + fractions[1] else "test"


def test_item_fields_and_layout_registry(tmp_path):
    assert sources.SOURCES == ("ffpp", "celebdf", "dfdc", "folder")
    assert set(sources.LAYOUTS) == set(sources.SOURCES)
    video = sources.Item("ffpp", "Deepfakes", "000_003", "train", 1, "c23", "video", ("/d/a.mp4",))
    assert (video.key, video.label_name, video.input) == ("ffpp/Deepfakes/000_003", "fake",
                                                          "/d/a.mp4")
    frames = sources.Item("folder", "real", "clip", "val", 0, kind="frames",
                          paths=("/d/clip/0001.png", "/d/clip/0002.png"))
    assert (frames.label_name, frames.input) == ("real", "/d/clip")
    assert sources.KINDS == ("video", "image", "frames")


def _touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------- splits


# Pinned: the rule must not change between releases (records would move between splits).
PINNED_SPLITS = {"ffpp/000": "train", "ffpp/007": "test", "ffpp/011": "val", "ffpp/024": "val",
                 "ffpp/027": "test", "dfdc/aaqaifqrwn": "test", "celebdf/id7": "train"}


def test_hash_split_follows_the_documented_sha1_rule():
    assert splits.stable_fraction("ffpp/000") == 0.18660831497521144
    assert {key: splits.hash_split(key) for key in PINNED_SPLITS} == PINNED_SPLITS
    keys = [f"ffpp/{i:03d}" for i in range(5000)]
    got = [splits.hash_split(k) for k in keys]
    assert got == [reference_split(k) for k in keys]
    counts = Counter(got)
    assert abs(counts["train"] / 5000 - 0.72) < 0.03
    assert abs(counts["val"] / 5000 - 0.14) < 0.02
    assert abs(counts["test"] / 5000 - 0.14) < 0.02
    # Other fractions move the cut points, nothing else.
    fractions = (0.5, 0.25, 0.25)
    assert [splits.hash_split(k, fractions) for k in keys[:500]] == \
        [reference_split(k, fractions) for k in keys[:500]]


def test_parse_fractions_normalizes_and_rejects():
    assert splits.parse_fractions("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="'0.5,0.5'"):
        splits.parse_fractions("0.5,0.5")
    with pytest.raises(ValueError, match="'a,b,c'"):
        splits.parse_fractions("a,b,c")


def test_partition_of_covers_all_partitions():
    keys = [f"dfdc/original/{i}" for i in range(400)]
    parts = [splits.partition_of(k, 4) for k in keys]
    # docs/build_records.md: a hash of the key ("partition/" + key, same SHA-1 rule).
    assert parts == [int(reference_fraction("partition/" + k) * 4) for k in keys]
    assert splits.partition_of("ffpp/Deepfakes/519_515", 4) == 2
    counts = Counter(parts)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60
    assert all(splits.partition_of(k, 1) == 0 for k in keys)
    with pytest.raises(ValueError, match="num_partitions must be >= 1, got 0"):
        splits.partition_of("k", 0)


# ------------------------------------------------------------------------------------ FF++


def test_ffpp_mini_official_splits(ffpp_mini):
    items = list_items("ffpp", str(ffpp_mini), splits_dir=str(ffpp_mini / "splits"))
    got = {(i.method, i.video_id): (i.split, i.label) for i in items}
    assert got == {
        ("original", "519"): ("train", 0), ("Deepfakes", "519_515"): ("train", 1),
        ("Face2Face", "750_743"): ("train", 1),  # its original 750 is not downloaded
        ("original", "004"): ("val", 0), ("NeuralTextures", "004_982"): ("val", 1),
        ("original", "634"): ("test", 0), ("FaceSwap", "634_660"): ("test", 1),
    }
    assert all(i.compression == "c23" and i.kind == "video" for i in items)
    assert len({i.key for i in items}) == len(items)
    # The same, read straight from the official files: pair [a, b] -> a, b, a_b and b_a.
    official = {}
    for split in ("train", "val", "test"):
        for a, b in json.loads((ffpp_mini / "splits" / f"{split}.json").read_text()):
            official.update({a: split, b: split, f"{a}_{b}": split, f"{b}_{a}": split})
    assert all(i.split == official[i.video_id] for i in items)
    assert all(i.paths == (str(ffpp_mini / ("original_sequences/youtube" if i.label == 0 else
                                              f"manipulated_sequences/{i.method}") / "c23/videos"
                                / f"{i.video_id}.mp4"),) for i in items)


def _ffpp_layout(root: Path, pairs, methods=("Deepfakes", "FaceSwap"), compression="c23"):
    for a, b in pairs:
        for vid in (a, b):
            _touch(root / "original_sequences/youtube" / compression / "videos" / f"{vid}.mp4")
        for method in methods:
            for fake in (f"{a}_{b}", f"{b}_{a}"):
                _touch(root / "manipulated_sequences" / method / compression / "videos"
                       / f"{fake}.mp4")


def test_ffpp_same_id_in_two_methods_stays_distinct(tmp_path):
    _ffpp_layout(tmp_path, [("000", "003")])
    items = list_items("ffpp", str(tmp_path))
    fakes = [i for i in items if i.video_id == "000_003"]
    assert {i.method for i in fakes} == {"Deepfakes", "FaceSwap"}
    assert len({i.key for i in fakes}) == 2


def test_ffpp_hash_split_keeps_pairs_together(tmp_path):
    pairs = [(f"{2 * i:03d}", f"{2 * i + 1:03d}") for i in range(150)]
    _ffpp_layout(tmp_path, pairs, methods=("Deepfakes",))
    items = list_items("ffpp", str(tmp_path))
    split = {(i.method, i.video_id): i.split for i in items}
    for a, b in pairs:
        group = {split[("original", a)], split[("original", b)],
                 split[("Deepfakes", f"{a}_{b}")], split[("Deepfakes", f"{b}_{a}")]}
        assert group == {reference_split(f"ffpp/{min(a, b)}")}, (a, b, group)
    originals = Counter(split[("original", v)] for pair in pairs for v in pair)
    assert originals["train"] > originals["val"] > 0 and originals["test"] > 0
    # Stable: listing again gives the same splits.
    assert [i.split for i in list_items("ffpp", str(tmp_path))] == [i.split for i in items]


def test_ffpp_methods_compression_and_dfd(tmp_path):
    _ffpp_layout(tmp_path, [("000", "003")], methods=("Deepfakes", "FaceShifter"),
                 compression="c40")
    actors = tmp_path / "original_sequences/actors/c40/videos"
    _touch(actors / "01__exit_phone_room.mp4")
    _touch(tmp_path / "manipulated_sequences/DeepFakeDetection/c40/videos"
           / "01_02__exit_phone_room__YVGY8LOK.mp4")
    items = list_items("ffpp", str(tmp_path), compression="c40",
                       methods=["FaceShifter", "DeepFakeDetection"])
    methods = Counter(i.method for i in items)
    assert methods == {"original": 2, "FaceShifter": 2, "actors": 1, "DeepFakeDetection": 1}
    dfd = {i.method: i.split for i in items if i.method in ("actors", "DeepFakeDetection")}
    # Both by a hash of the target actor 01.
    assert dfd == {"actors": reference_split("ffpp/actors/01"),
                   "DeepFakeDetection": reference_split("ffpp/actors/01")}
    assert all(i.compression == "c40" for i in items)
    with pytest.raises(SourceError, match="no FF\\+\\+ videos .* c23"):
        list_items("ffpp", str(tmp_path), compression="c23")
    with pytest.raises(SourceError, match="unknown FF\\+\\+ method.*'DeepFake'"):
        list_items("ffpp", str(tmp_path), compression="c40", methods=["DeepFake"])


def test_ffpp_missing_split_file(tmp_path):
    _ffpp_layout(tmp_path, [("000", "003")])
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.json").write_text(json.dumps([["000", "003"]]))
    with pytest.raises(SourceError, match="missing FF\\+\\+ split file .*val.json"):
        list_items("ffpp", str(tmp_path), splits_dir=str(tmp_path / "splits"))


def test_ffpp_fake_follows_its_pair_when_original_missing(tmp_path):
    _ffpp_layout(tmp_path, [("000", "003")])
    os.remove(tmp_path / "original_sequences/youtube/c23/videos/000.mp4")
    splits_dir = tmp_path / "splits"
    splits_dir.mkdir()
    for name, pairs in (("train", []), ("val", []), ("test", [["000", "003"]])):
        (splits_dir / f"{name}.json").write_text(json.dumps(pairs))
    items = list_items("ffpp", str(tmp_path), splits_dir=str(splits_dir))
    assert {i.key: i.split for i in items} == {
        "ffpp/original/003": "test", "ffpp/Deepfakes/000_003": "test",
        "ffpp/Deepfakes/003_000": "test", "ffpp/FaceSwap/000_003": "test",
        "ffpp/FaceSwap/003_000": "test"}


# -------------------------------------------------------------------------------- Celeb-DF


def _held_out(identity: str) -> bool:
    return reference_fraction(f"celebdf/{identity}") < 0.14 / 0.86


def test_celebdf_test_list_and_identity_holdout(tmp_path):
    ids = [f"id{n}" for n in range(60)]
    held = [i for i in ids if _held_out(i)]
    kept = [i for i in ids if not _held_out(i)]
    assert held == ["id8", "id12", "id15", "id19", "id22", "id44", "id52", "id57"]  # pinned
    h, k, k2 = held[0], kept[0], kept[1]
    names = {
        "Celeb-real": [f"{h}_0000", f"{k}_0000", f"{k}_0001", f"{k2}_0000"],
        "YouTube-real": ["00000", "00001", "00002"],
        "Celeb-synthesis": [f"{k}_{h}_0000", f"{h}_{k}_0001", f"{k}_{k2}_0000",
                            f"{k2}_{k}_0003"],
    }
    for folder, stems in names.items():
        for stem in stems:
            _touch(tmp_path / folder / f"{stem}.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        f"1 Celeb-real/{k}_0001.mp4\n1 YouTube-real/00002.mp4\n"
        f"0 Celeb-synthesis/{k2}_{k}_0003.mp4\n"
        "0 Celeb-synthesis/id99_id98_0000.mp4\n")  # the last one is not downloaded
    items = {(i.method, i.video_id): i for i in list_items("celebdf", str(tmp_path))}
    assert items[("Celeb-real", f"{k}_0001")].split == "test"
    assert items[("YouTube-real", "00002")].split == "test"
    assert items[("Celeb-synthesis", f"{k2}_{k}_0003")].split == "test"
    assert items[("Celeb-real", f"{h}_0000")].split == "val"
    assert items[("Celeb-real", f"{k}_0000")].split == "train"
    assert items[("Celeb-synthesis", f"{k}_{h}_0000")].split == "val"  # source held out
    assert items[("Celeb-synthesis", f"{h}_{k}_0001")].split == "val"  # target held out
    assert items[("Celeb-synthesis", f"{k}_{k2}_0000")].split == "train"
    for (folder, _), item in items.items():
        assert item.label == (1 if folder == "Celeb-synthesis" else 0)
    assert Counter(i.split for i in items.values())["test"] == 3


def test_celebdf_real_test_list_labels(shared_data, tmp_path):
    listed = read_celebdf_test_list(str(shared_data / "celebdf/List_of_testing_videos.txt"))
    assert len(listed) == 518
    assert Counter(listed.values()) == {0: 178, 1: 340}  # 1 = real in the file -> label 0
    assert all(label == 1 for name, label in listed.items() if name.startswith("Celeb-synthesis"))


def test_celebdf_missing_test_list(tmp_path):
    _touch(tmp_path / "Celeb-real/id0_0000.mp4")
    with pytest.raises(SourceError, match="missing Celeb-DF test list"):
        list_items("celebdf", str(tmp_path))


# ------------------------------------------------------------------------------------ DFDC


def test_dfdc_metadata_labels_and_group_splits(tmp_path):
    for part in range(2):
        directory = tmp_path / f"dfdc_train_part_{part}"
        metadata = {}
        for r in range(20):
            real = f"r{part}{r:02d}"
            metadata[f"{real}.mp4"] = {"label": "REAL", "original": None, "split": "train"}
            _touch(directory / f"{real}.mp4")
            for f in range(2):
                fake = f"f{part}{r:02d}{f}"
                metadata[f"{fake}.mp4"] = {"label": "FAKE", "original": f"{real}.mp4",
                                           "split": "train"}
                _touch(directory / f"{fake}.mp4")
        metadata["gone.mp4"] = {"label": "FAKE", "original": "r000.mp4", "split": "train"}
        (directory / "metadata.json").write_text(json.dumps(metadata))
    items = list_items("dfdc", str(tmp_path))
    assert len(items) == 2 * 20 * 3
    for item in items:
        assert item.method == ("original" if item.label == 0 else "DFDC")
        real = item.video_id if item.label == 0 else f"r{item.video_id[1:4]}"
        assert item.split == reference_split(f"dfdc/{real}")  # a fake follows its original
    assert len({i.split for i in items}) == 3


def test_dfdc_without_metadata(tmp_path):
    _touch(tmp_path / "a.mp4")
    with pytest.raises(SourceError, match="no DFDC metadata.json"):
        list_items("dfdc", str(tmp_path))


# ---------------------------------------------------------------------------------- folder


def test_folder_with_split_folders(tmp_path):
    _touch(tmp_path / "train/real/a.mp4")
    _touch(tmp_path / "train/fake/b.avi")
    _touch(tmp_path / "val/real/clip7/0001.png")
    _touch(tmp_path / "val/real/clip7/0002.png")
    _touch(tmp_path / "val/real/clip7/0010.png")
    _touch(tmp_path / "test/fake/face.jpg")
    _touch(tmp_path / "test/fake/notes.txt")
    items = list_items("folder", str(tmp_path))
    got = {(i.split, i.label, i.method, i.video_id, i.kind) for i in items}
    assert got == {("train", 0, "real", "a", "video"), ("train", 1, "fake", "b", "video"),
                   ("val", 0, "real", "clip7", "frames"), ("test", 1, "fake", "face", "image")}
    frames = next(i for i in items if i.kind == "frames")
    assert [os.path.basename(p) for p in frames.paths] == ["0001.png", "0002.png", "0010.png"]
    assert frames.input == str(tmp_path / "val/real/clip7")


def test_folder_hash_split_with_groups_csv(shared_data):
    root = shared_data / "dfdc_faces"
    items = list_items("folder", str(root), dataset="dfdc_faces")
    assert len(items) == 600 and Counter(i.label for i in items) == {0: 300, 1: 300}
    assert all(i.dataset == "dfdc_faces" and i.kind == "image" for i in items)
    by_group: dict[str, set] = {}
    for item in items:
        by_group.setdefault(item.group, set()).add(item.split)
    assert len(by_group) == 300
    assert all(s == {reference_split(f"dfdc_faces/{g}")} for g, s in by_group.items())
    assert {s for v in by_group.values() for s in v} == {"train", "val", "test"}


def test_folder_nested_and_colliding_names(tmp_path):
    _touch(tmp_path / "real/clip.mp4")
    _touch(tmp_path / "real/clip.png")
    _touch(tmp_path / "fake/method_a/v1.mp4")
    _touch(tmp_path / "fake/method_a/v2/000.jpg")
    items = list_items("folder", str(tmp_path))
    assert sorted(i.video_id for i in items) == ["clip.mp4", "clip.png", "method_a/v1",
                                                 "method_a/v2"]
    # No split folders, no labels.csv: each item is its own group, hashed with the dataset name.
    assert all(i.split == reference_split(f"folder/{i.video_id}") for i in items)
    named = list_items("folder", str(tmp_path), dataset="mine")
    assert all(i.dataset == "mine" and i.split == reference_split(f"mine/{i.video_id}")
               for i in named)


def test_folder_and_root_errors(tmp_path):
    with pytest.raises(SourceError, match="no videos or images under"):
        list_items("folder", str(tmp_path))
    with pytest.raises(SourceError, match="is not a directory"):
        list_items("folder", str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="unknown source 'kinetics'"):
        list_items("kinetics", str(tmp_path))

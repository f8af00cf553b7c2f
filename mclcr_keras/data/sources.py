"""Dataset layouts -> a sorted list of `Item`s (one per video, image or frame folder).

Each item knows its split, label, dataset, method, compression, video id and input path(s); the
converter (`mclcr_keras.build_records`) turns items into face crops. Supported layouts:

- ``ffpp``: FaceForensics++ official layout
  (``original_sequences/youtube/<c>/videos/*.mp4``, ``manipulated_sequences/<method>/<c>/videos``),
  split by the official ``train/val/test.json`` or, without them, by a hash of the pair of
  originals (720/140/140 proportions).
- ``celebdf``: Celeb-DF v2 (``Celeb-real``, ``YouTube-real``, ``Celeb-synthesis``); test = the
  official ``List_of_testing_videos.txt``; the rest train, with identities held out for val.
- ``dfdc``: DFDC parts (``*/metadata.json`` beside the mp4 files), split by a hash of the original
  video so that a real video and its fakes never straddle splits.
- ``folder``: ``ROOT/[<split>/]<real|fake>/...`` of videos, images, or one folder of frames per
  video; split by hash (of the ``group`` in an optional ``ROOT/labels.csv``) without split folders.

The rules are written down in ``docs/build_records.md``.

Example:

>>> items = list_items("ffpp", "/data/FaceForensics", splits_dir="/data/FaceForensics/splits")
>>> items[0].key, items[0].split, items[0].label
('ffpp/Deepfakes/000_003', 'train', 1)
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mclcr_keras.data.splits import (
    DEFAULT_FRACTIONS,
    SPLITS,
    hash_split,
    load_ffpp_splits,
    stable_fraction,
)

logger = logging.getLogger(__name__)

SOURCES = ("ffpp", "celebdf", "dfdc", "folder")
LABEL_NAMES = ("real", "fake")  # index = label; the same as mclcr_keras.data.schema.LABEL_NAMES

# Kept here (equal to mclcr_keras.data.video's) so that listing a layout needs no decoder import.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter",
                "DeepFakeDetection")
FFPP_DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FFPP_COMPRESSIONS = ("c23", "c40", "raw")
CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"

KINDS = ("video", "image", "frames")


class SourceError(ValueError):
    """A layout problem the user must fix (missing folder, missing split file, nothing found)."""


@dataclass(frozen=True, order=True)
class Item:
    """One input to convert: a video file, a single image, or a folder of frames.

    Args:
        dataset: dataset name, e.g. ``"ffpp"``.
        method: manipulation method (``"original"`` for FF++/DFDC reals; see docs).
        video_id: id unique within (dataset, method), e.g. ``"519_515"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        label: 0 real, 1 fake.
        compression: FF++ compression (``"c23"``), ``""`` elsewhere.
        kind: ``"video"``, ``"image"`` or ``"frames"``.
        paths: the input file (video, image) or the sorted frame files of a frame folder.
        group: what the split was decided on (kept for the record, e.g. the original video).
    """

    dataset: str
    method: str
    video_id: str
    split: str = field(compare=False)
    label: int = field(compare=False)
    compression: str = field(compare=False, default="")
    kind: str = field(compare=False, default="video")
    paths: tuple[str, ...] = field(compare=False, default=())
    group: str = field(compare=False, default="")

    @property
    def key(self) -> str:
        """``dataset/method/video_id``: the unique key of a video across the whole output."""
        return f"{self.dataset}/{self.method}/{self.video_id}"

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label]

    @property
    def input(self) -> str:
        """The path shown to users: the file, or the folder of a frame sequence."""
        if self.kind == "frames":
            return os.path.dirname(self.paths[0])
        return self.paths[0]


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _files(directory: str, extensions: Iterable[str]) -> list[str]:
    if not os.path.isdir(directory):
        return []
    extensions = frozenset(extensions)
    names = [n for n in os.listdir(directory)
             if os.path.splitext(n)[1].lower() in extensions
             and os.path.isfile(os.path.join(directory, n))]
    return [os.path.join(directory, n) for n in sorted(names, key=_natural_key)]


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


# --------------------------------------------------------------------------------------- FF++


def _ffpp_pair_groups(root: str, compression: str) -> dict[str, str]:
    """Original id -> the smaller id of its pair, from the fakes ``a_b`` of every method on disk.

    Used without the official split files: a pair's two originals and all their fakes hash
    together. An original whose pair has no fake on disk is its own group.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    manipulated = os.path.join(root, "manipulated_sequences")
    methods = sorted(os.listdir(manipulated)) if os.path.isdir(manipulated) else []
    for method in methods:
        if method == "DeepFakeDetection":
            continue
        for path in _files(os.path.join(manipulated, method, compression, "videos"),
                           VIDEO_EXTENSIONS):
            parts = _stem(path).split("_")
            if len(parts) == 2:
                a, b = find(parts[0]), find(parts[1])
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in list(parent)}


def ffpp_items(
    root: str,
    compression: str = "c23",
    methods: Sequence[str] = FFPP_DEFAULT_METHODS,
    splits_dir: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> list[Item]:
    """Lists FaceForensics++ videos in the official layout.

    Args:
        root: the FF++ root (holding ``original_sequences`` and ``manipulated_sequences``).
        compression: ``"c23"``, ``"c40"`` or ``"raw"``.
        methods: manipulation methods to include (`FFPP_METHODS`).
        splits_dir: folder with the official ``train.json``, ``val.json``, ``test.json``;
            ``None`` splits by a hash of each pair of originals with ``fractions``.
        fractions: train/val/test proportions of the hash split.

    Originals are method ``"original"`` (``original_sequences/youtube``). With
    ``DeepFakeDetection``, its originals (``original_sequences/actors``) are method ``"actors"``,
    and DFD videos (absent from the official split files) are split by a hash of the target actor.
    """
    if compression not in FFPP_COMPRESSIONS:
        raise SourceError(f"--compression must be one of {FFPP_COMPRESSIONS}, got {compression!r}")
    unknown = [m for m in methods if m not in FFPP_METHODS]
    if unknown:
        raise SourceError(f"unknown FF++ method(s) {unknown}; available: {list(FFPP_METHODS)}")
    if splits_dir is not None:
        try:
            original_split, fake_split = load_ffpp_splits(splits_dir)
        except (FileNotFoundError, ValueError) as error:
            raise SourceError(str(error)) from None
    else:
        groups = _ffpp_pair_groups(root, compression)

    def split_of_original(vid: str) -> str | None:
        if splits_dir is not None:
            return original_split.get(vid)
        return hash_split(f"ffpp/{groups.get(vid, vid)}", fractions)

    def split_of_fake(vid: str) -> str | None:
        if splits_dir is not None:
            return fake_split.get(vid)
        return split_of_original(vid.split("_")[0])

    def dfd_split(stem: str) -> str:
        actor = stem.split("__")[0].split("_")[0]
        return hash_split(f"ffpp/actors/{actor}", fractions)

    items: list[Item] = []
    skipped: list[str] = []

    def add(path: str, method: str, label: int, split: str | None, group: str) -> None:
        if split is None:
            skipped.append(path)
            return
        items.append(Item("ffpp", method, _stem(path), split, label, compression, "video",
                          (path,), group))

    youtube = os.path.join(root, "original_sequences", "youtube", compression, "videos")
    for path in _files(youtube, VIDEO_EXTENSIONS):
        add(path, "original", 0, split_of_original(_stem(path)), _stem(path))
    if "DeepFakeDetection" in methods:
        actors = os.path.join(root, "original_sequences", "actors", compression, "videos")
        for path in _files(actors, VIDEO_EXTENSIONS):
            add(path, "actors", 0, dfd_split(_stem(path)), _stem(path).split("__")[0])
    for method in methods:
        directory = os.path.join(root, "manipulated_sequences", method, compression, "videos")
        if not os.path.isdir(directory):
            logger.warning("FF++ method %s not found at %s; skipped", method, directory)
            continue
        for path in _files(directory, VIDEO_EXTENSIONS):
            stem = _stem(path)
            if method == "DeepFakeDetection":
                add(path, method, 1, dfd_split(stem), stem.split("__")[0].split("_")[0])
            else:
                add(path, method, 1, split_of_fake(stem), stem.split("_")[0])
    if skipped:
        logger.warning("%d FF++ video(s) are in none of the split files and are skipped, e.g. %s",
                       len(skipped), skipped[0])
    if not items:
        raise SourceError(
            f"no FF++ videos under {root} for compression {compression} (expected "
            f"original_sequences/youtube/{compression}/videos or "
            f"manipulated_sequences/<method>/{compression}/videos)"
        )
    return sorted(items)


# ----------------------------------------------------------------------------------- Celeb-DF


def celebdf_identities(folder: str, stem: str) -> tuple[str, ...]:
    """Identities in a Celeb-DF v2 name: ``id3_2`` -> (``id3``,); ``id0_id16_0003`` ->
    (``id0``, ``id16``); YouTube-real videos carry none -> ()."""
    if folder == "YouTube-real":
        return ()
    return tuple(re.findall(r"id\d+", stem))


def read_celebdf_test_list(path: str) -> dict[str, int]:
    """``List_of_testing_videos.txt`` -> {"Celeb-real/id0_0000.mp4": label} with label 0 real,
    1 fake (the file itself says 1 = real, 0 = fake)."""
    if not os.path.isfile(path):
        raise SourceError(f"missing Celeb-DF test list {path}")
    entries: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[0] not in ("0", "1"):
                raise SourceError(f"{path}:{number}: expected '<1|0> <folder>/<file>.mp4', "
                                  f"got {line.strip()!r}")
            entries[fields[1].replace("\\", "/")] = 0 if fields[0] == "1" else 1
    return entries


def celebdf_items(
    root: str,
    splits_dir: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> list[Item]:
    """Lists Celeb-DF v2: test = the official list; the rest train, with identities held out
    for val.

    An identity ``idN`` is held out when ``stable_fraction("celebdf/idN") < val / (train + val)``
    (with the default fractions, 0.14 / 0.86, about 10 of the 59 celebrities). A real video of a
    held-out identity goes to val, and so does a fake whose source or target identity is held out.
    YouTube-real videos (no identity in their name) go to val by a hash of their name with the
    same fraction. A video of the test list is never in train or val.

    Args:
        root: the Celeb-DF v2 root (``Celeb-real``, ``YouTube-real``, ``Celeb-synthesis``).
        splits_dir: folder holding ``List_of_testing_videos.txt`` (default: ``root``).
        fractions: train/val/test proportions; only train and val matter here.
    """
    test_list = read_celebdf_test_list(os.path.join(splits_dir or root, CELEBDF_TEST_LIST))
    val_fraction = fractions[1] / max(fractions[0] + fractions[1], 1e-12)
    items: list[Item] = []
    seen_test = 0
    for folder, label in CELEBDF_FOLDERS.items():
        for path in _files(os.path.join(root, folder), VIDEO_EXTENSIONS):
            relative = f"{folder}/{os.path.basename(path)}"
            stem = _stem(path)
            if relative in test_list:
                seen_test += 1
                if test_list[relative] != label:
                    logger.warning("%s: test list says %s but it is in %s; the folder wins",
                                   relative, LABEL_NAMES[test_list[relative]], folder)
                split, group = "test", "test-list"
            else:
                identities = celebdf_identities(folder, stem)
                keys = [f"celebdf/{i}" for i in identities] or [f"celebdf/{folder}/{stem}"]
                held_out = any(stable_fraction(k) < val_fraction for k in keys)
                split, group = ("val" if held_out else "train"), "+".join(identities) or stem
            items.append(Item("celebdf", folder, stem, split, label, "", "video", (path,), group))
    if not items:
        raise SourceError(f"no Celeb-DF videos under {root} (expected Celeb-real/, YouTube-real/, "
                          f"Celeb-synthesis/)")
    if seen_test < len(test_list):
        logger.warning("%d of %d test-list videos are missing under %s",
                       len(test_list) - seen_test, len(test_list), root)
    return sorted(items)


# --------------------------------------------------------------------------------------- DFDC


def dfdc_items(root: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[Item]:
    """Lists DFDC parts: every ``metadata.json`` under ``root`` (recursively) with its videos.

    Labels come from ``metadata.json`` (``"REAL"``/``"FAKE"``); the split is
    ``hash_split("dfdc/<original>")`` with the original's file stem (a real video is its own
    original), so a real video and all its fakes share a split. Reals are method ``"original"``,
    fakes ``"DFDC"``; the video id is the file stem (unique across DFDC).
    """
    metadata_files = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "metadata.json" in filenames:
            metadata_files.append(os.path.join(directory, "metadata.json"))
    if not metadata_files:
        raise SourceError(f"no DFDC metadata.json under {root}")
    items: list[Item] = []
    missing = 0
    for meta_path in metadata_files:
        try:
            with open(meta_path, encoding="utf-8") as handle:
                metadata = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise SourceError(f"cannot read {meta_path}: {error}") from None
        if not isinstance(metadata, dict):
            raise SourceError(f"{meta_path} is not a JSON object of file -> entry")
        directory = os.path.dirname(meta_path)
        for name, entry in sorted(metadata.items()):
            label_text = str(entry.get("label", "")).upper() if isinstance(entry, dict) else ""
            if label_text not in ("REAL", "FAKE"):
                raise SourceError(f"{meta_path}: entry {name!r} has no label REAL or FAKE")
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                missing += 1
                continue
            label = 0 if label_text == "REAL" else 1
            original = entry.get("original") if label == 1 else None
            group = _stem(original) if original else _stem(name)
            items.append(Item("dfdc", "original" if label == 0 else "DFDC", _stem(name),
                              hash_split(f"dfdc/{group}", fractions), label, "", "video",
                              (path,), group))
    if missing:
        logger.warning("%d video(s) listed in DFDC metadata are missing on disk; skipped", missing)
    if not items:
        raise SourceError(f"no DFDC videos found beside the metadata.json files under {root}")
    return sorted(items)


# ------------------------------------------------------------------------------------- folder


def _read_groups(root: str) -> dict[str, str]:
    """Optional ``ROOT/labels.csv`` with columns ``file`` and ``group``: relative path -> group."""
    path = os.path.join(root, "labels.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "file" not in reader.fieldnames \
                or "group" not in reader.fieldnames:
            return {}
        return {row["file"].replace("\\", "/").strip("/"): row["group"] for row in reader
                if row.get("file") and row.get("group")}


def _walk_class_dir(class_dir: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(kind, video_id, paths) of every video, loose image and frame folder under a class dir."""
    found: list[tuple[str, str, tuple[str, ...]]] = []

    def walk(directory: str, relative: str) -> None:
        names = sorted(os.listdir(directory), key=_natural_key)
        images = []
        for name in names:
            path = os.path.join(directory, name)
            extension = os.path.splitext(name)[1].lower()
            if os.path.isdir(path):
                walk(path, f"{relative}/{name}" if relative else name)
            elif extension in VIDEO_EXTENSIONS:
                video_id = f"{relative}/{_stem(name)}" if relative else _stem(name)
                found.append(("video", video_id, (path,)))
            elif extension in IMAGE_EXTENSIONS:
                images.append(path)
        if not images:
            return
        if relative:  # a folder of frames: one video
            found.append(("frames", relative, tuple(images)))
        else:  # loose images in the class folder: one-frame videos
            found.extend(("image", _stem(p), (p,)) for p in images)

    walk(class_dir, "")
    # Make ids unique when e.g. clip.mp4 and clip.png sit side by side: keep their extension.
    counts: dict[str, int] = {}
    for _, video_id, _ in found:
        counts[video_id] = counts.get(video_id, 0) + 1
    unique = []
    for kind, video_id, paths in found:
        if counts[video_id] > 1 and kind != "frames":
            video_id += os.path.splitext(paths[0])[1].lower()
        unique.append((kind, video_id, paths))
    return unique


def folder_items(
    root: str,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    dataset: str = "folder",
) -> list[Item]:
    """Lists a generic ``ROOT/[<split>/]<real|fake>/...`` layout.

    Under ``real/`` and ``fake/``: video files (one item each), images directly in the class
    folder (each a one-frame video), and folders of images (one video per folder, frames in
    natural name order; the video id is the folder path relative to the class folder).
    Subfolders are searched recursively. The method is the class name (``"real"``/``"fake"``).

    Without ``train/``, ``val/``, ``test/`` folders the split is
    ``hash_split("<dataset>/<group>")`` where the group is the item's ``group`` in an optional
    ``ROOT/labels.csv`` (columns ``file``, ``group``; paths relative to ROOT, e.g.
    ``real/abc.jpg``) or else its video id; items sharing a group share a split.
    """
    split_dirs = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    layout = [(s, os.path.join(root, s)) for s in split_dirs] or [(None, root)]
    groups = {} if split_dirs else _read_groups(root)
    items: list[Item] = []
    for split, base in layout:
        for label, name in enumerate(LABEL_NAMES):
            class_dir = os.path.join(base, name)
            if not os.path.isdir(class_dir):
                continue
            for kind, video_id, paths in _walk_class_dir(class_dir):
                relative = os.path.relpath(paths[0] if kind != "frames"
                                           else os.path.dirname(paths[0]), root)
                group = groups.get(relative.replace(os.sep, "/"), video_id)
                item_split = split or hash_split(f"{dataset}/{group}", fractions)
                items.append(Item(dataset, name, video_id, item_split, label, "", kind, paths,
                                  group))
    if not items:
        raise SourceError(
            f"no videos or images under {root} (expected ROOT/real and ROOT/fake, or "
            f"ROOT/<train|val|test>/<real|fake>)"
        )
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise SourceError(f"the same video id appears in two split folders: {duplicate}")
    return sorted(items)


def list_items(source: str, root: str, **options) -> list[Item]:
    """Lists the items of a source layout (``ffpp``, ``celebdf``, ``dfdc`` or ``folder``).

    Args:
        source: layout name, one of `SOURCES`.
        root: dataset root folder.
        **options: forwarded to `ffpp_items`, `celebdf_items`, `dfdc_items` or `folder_items`.

    Raises:
        SourceError: unknown source, missing root, or a layout problem.
    """
    if source not in SOURCES:
        raise SourceError(f"unknown source {source!r}; choose one of {list(SOURCES)}")
    if not os.path.isdir(root):
        raise SourceError(f"--root {root} is not a directory")
    root = os.path.abspath(root)
    builders = {"ffpp": ffpp_items, "celebdf": celebdf_items, "dfdc": dfdc_items,
                "folder": folder_items}
    return builders[source](root, **options)

"""A generic ``ROOT/[<split>/]<real|fake>/...`` folder of videos, images or frame folders."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from mclcr_keras.data import storage
from mclcr_keras.data.media import IMAGE, VIDEO, media_kind, sniff_kind
from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.data.sources.base import Item, SourceError, file_stem, natural_key
from mclcr_keras.data.splits import DEFAULT_FRACTIONS, SPLITS, hash_split


def _read_groups(root: str) -> dict[str, str]:
    """Optional ``ROOT/labels.csv`` with columns ``file`` and ``group``: relative path -> group."""
    path = os.path.join(root, "labels.csv")
    if not storage.isfile(path):
        return {}
    with storage.open_text(path, newline="") as handle:
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
        names = sorted(storage.listdir(directory), key=natural_key)
        images = []
        for name in names:
            path = os.path.join(directory, name)
            if storage.isdir(path):
                walk(path, f"{relative}/{name}" if relative else name)
                continue
            kind = media_kind(name)
            if kind is not None:  # a media name; what it holds decides (a PNG named .mp4)
                kind = sniff_kind(path) or kind
            if kind == VIDEO:
                video_id = f"{relative}/{file_stem(name)}" if relative else file_stem(name)
                found.append(("video", video_id, (path,)))
            elif kind == IMAGE:
                images.append(path)
        if not images:
            return
        if relative:  # a folder of frames: one video
            found.append(("frames", relative, tuple(images)))
        else:  # loose images in the class folder: one-frame videos
            found.extend(("image", file_stem(p), (p,)) for p in images)

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
    split_dirs = [s for s in SPLITS if storage.isdir(os.path.join(root, s))]
    layout = [(s, os.path.join(root, s)) for s in split_dirs] or [(None, root)]
    groups = {} if split_dirs else _read_groups(root)
    items: list[Item] = []
    for split, base in layout:
        for label, name in enumerate(LABEL_NAMES):
            class_dir = os.path.join(base, name)
            if not storage.isdir(class_dir):
                continue
            for kind, video_id, paths in _walk_class_dir(class_dir):
                relative = storage.relpath(paths[0] if kind != "frames"
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

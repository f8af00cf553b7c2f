"""FaceForensics++ in its official layout, split by the official JSON files or by pair hash."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from mclcr_keras.data import storage
from mclcr_keras.data.media import VIDEO_EXTENSIONS
from mclcr_keras.data.sources.base import Item, SourceError, file_stem, list_files
from mclcr_keras.data.splits import DEFAULT_FRACTIONS, hash_split, load_ffpp_splits

logger = logging.getLogger(__name__)

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter",
                "DeepFakeDetection")
FFPP_DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FFPP_COMPRESSIONS = ("c23", "c40", "raw")


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
    methods = sorted(storage.listdir(manipulated)) if storage.isdir(manipulated) else []
    for method in methods:
        if method == "DeepFakeDetection":
            continue
        for path in list_files(os.path.join(manipulated, method, compression, "videos"),
                           VIDEO_EXTENSIONS):
            parts = file_stem(path).split("_")
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
        items.append(Item("ffpp", method, file_stem(path), split, label, compression, "video",
                          (path,), group))

    youtube = os.path.join(root, "original_sequences", "youtube", compression, "videos")
    for path in list_files(youtube, VIDEO_EXTENSIONS):
        add(path, "original", 0, split_of_original(file_stem(path)), file_stem(path))
    if "DeepFakeDetection" in methods:
        actors = os.path.join(root, "original_sequences", "actors", compression, "videos")
        for path in list_files(actors, VIDEO_EXTENSIONS):
            add(path, "actors", 0, dfd_split(file_stem(path)), file_stem(path).split("__")[0])
    for method in methods:
        directory = os.path.join(root, "manipulated_sequences", method, compression, "videos")
        if not storage.isdir(directory):
            logger.warning("FF++ method %s not found at %s; skipped", method, directory)
            continue
        for path in list_files(directory, VIDEO_EXTENSIONS):
            stem = file_stem(path)
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

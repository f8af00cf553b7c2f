"""DFDC parts (``metadata.json`` beside the videos), split by a hash of the original video."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from mclcr_keras.data import storage
from mclcr_keras.data.sources.base import Item, SourceError, file_stem
from mclcr_keras.data.splits import DEFAULT_FRACTIONS, hash_split

logger = logging.getLogger(__name__)


def dfdc_items(root: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[Item]:
    """Lists DFDC parts: every ``metadata.json`` under ``root`` (recursively) with its videos.

    Labels come from ``metadata.json`` (``"REAL"``/``"FAKE"``); the split is
    ``hash_split("dfdc/<original>")`` with the original's file stem (a real video is its own
    original), so a real video and all its fakes share a split. Reals are method ``"original"``,
    fakes ``"DFDC"``; the video id is the file stem (unique across DFDC).
    """
    metadata_files = []
    for directory, dirnames, filenames in storage.walk(root):
        dirnames.sort()
        if "metadata.json" in filenames:
            metadata_files.append(os.path.join(directory, "metadata.json"))
    if not metadata_files:
        raise SourceError(f"no DFDC metadata.json under {root}")
    items: list[Item] = []
    missing = 0
    for meta_path in metadata_files:
        try:
            with storage.open_text(meta_path) as handle:
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
            if not storage.isfile(path):
                missing += 1
                continue
            label = 0 if label_text == "REAL" else 1
            original = entry.get("original") if label == 1 else None
            group = file_stem(original) if original else file_stem(name)
            items.append(Item("dfdc", "original" if label == 0 else "DFDC", file_stem(name),
                              hash_split(f"dfdc/{group}", fractions), label, "", "video",
                              (path,), group))
    if missing:
        logger.warning("%d video(s) listed in DFDC metadata are missing on disk; skipped", missing)
    if not items:
        raise SourceError(f"no DFDC videos found beside the metadata.json files under {root}")
    return sorted(items)

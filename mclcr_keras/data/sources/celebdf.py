"""Celeb-DF v2: the official test list, identities held out for val."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

from mclcr_keras.data import storage
from mclcr_keras.data.media import VIDEO_EXTENSIONS
from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.data.sources.base import Item, SourceError, file_stem, list_files
from mclcr_keras.data.splits import DEFAULT_FRACTIONS, stable_fraction

logger = logging.getLogger(__name__)

CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"


def celebdf_identities(folder: str, stem: str) -> tuple[str, ...]:
    """Identities in a Celeb-DF v2 name: ``id3_2`` -> (``id3``,); ``id0_id16_0003`` ->
    (``id0``, ``id16``); YouTube-real videos carry none -> ()."""
    if folder == "YouTube-real":
        return ()
    return tuple(re.findall(r"id\d+", stem))


def read_celebdf_test_list(path: str) -> dict[str, int]:
    """``List_of_testing_videos.txt`` -> {"Celeb-real/id0_0000.mp4": label} with label 0 real,
    1 fake (the file itself says 1 = real, 0 = fake)."""
    if not storage.isfile(path):
        raise SourceError(f"missing Celeb-DF test list {path}")
    entries: dict[str, int] = {}
    with storage.open_text(path) as handle:
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
        for path in list_files(os.path.join(root, folder), VIDEO_EXTENSIONS):
            relative = f"{folder}/{os.path.basename(path)}"
            stem = file_stem(path)
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

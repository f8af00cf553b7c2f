"""What every source layout produces: `Item`s (one per video, image or frame folder), and the
file-listing helpers the layouts share. See `mclcr_keras.data.sources` for the layouts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mclcr_keras.data import storage
from mclcr_keras.data.schema import LABEL_NAMES

# What an input is: a video file, a single image, or a folder of frame images.
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


def natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_files(directory: str, extensions: Iterable[str]) -> list[str]:
    if not storage.isdir(directory):
        return []
    extensions = frozenset(extensions)
    names = [n for n in storage.listdir(directory)
             if os.path.splitext(n)[1].lower() in extensions
             and storage.isfile(os.path.join(directory, n))]
    return [os.path.join(directory, n) for n in sorted(names, key=natural_key)]


def file_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]

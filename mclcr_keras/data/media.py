"""Kinds of media files: which inputs are videos and which are images.

The one list of the extensions the converter (`mclcr_keras.data.sources`) and the scorer
(`mclcr_keras.inference.predict`) accept. TensorFlow-, OpenCV- and NumPy-free, so listing a dataset
layout imports no decoder.

Example:

>>> media_kind("clip.MP4"), media_kind("face.jpg"), media_kind("notes.txt")
('video', 'image', None)
"""

from __future__ import annotations

import os

VIDEO = "video"
IMAGE = "image"
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
)


def media_kind(path: str | os.PathLike) -> str | None:
    """``"video"`` or ``"image"`` from the file extension; ``None`` when it is neither."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in VIDEO_EXTENSIONS:
        return VIDEO
    if suffix in IMAGE_EXTENSIONS:
        return IMAGE
    return None

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

from mclcr_keras.data import storage

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


# Leading bytes of the image and container formats OpenCV and FFmpeg read.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
                b"II*\x00", b"MM\x00*")
# EBML (MKV, WebM), Ogg, FLV, MPEG-PS, MPEG-1/2 video, ASF (WMV), an H.264/HEVC Annex B stream
_VIDEO_MAGIC = (b"\x1aE\xdf\xa3", b"OggS", b"FLV", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3",
                b"0&\xb2u\x8ef\xcf\x11", b"\x00\x00\x00\x01")
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"styp")  # MP4, MOV, 3GP


def sniff_kind(path: str | os.PathLike) -> str | None:
    r"""``"video"`` or ``"image"`` from the file's first bytes, whatever its name says; ``None``
    when they match no known format (or the file cannot be read).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
    ...     _ = f.write(b"\x89PNG\r\n\x1a\n" + bytes(8)); f.flush()
    ...     sniff_kind(f.name)
    'image'
    """
    try:
        with storage.open_binary(os.fspath(path)) as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return IMAGE
    if head[4:8] in _ISO_BOXES or head.startswith(_VIDEO_MAGIC) or (
            head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return VIDEO
    if len(head) > 0 and head[0] == 0x47 and _is_transport_stream(path):
        return VIDEO
    return None


def _is_transport_stream(path) -> bool:
    """MPEG-TS: a 0x47 sync byte every 188 bytes."""
    with storage.open_binary(os.fspath(path)) as handle:
        head = handle.read(188 * 3 + 1)
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47

"""Image size from the header bytes, before any decoding: PNG, JPEG, GIF, BMP, WebP, TIFF.

The formats `mclcr_keras.data.media.sniff_kind` calls images. A decoder allocates the whole
bitmap the header declares before it reads a pixel, so a 3 MB PNG that declares 32000 x 32000
costs gigabytes to "open"; reading the header first lets `mclcr_keras.data.limits` refuse it in
microseconds. Pure Python (``struct``), no decoder imported. Only the bytes that locate the size
are read (a JPEG's segments are skipped by their lengths, not read).

What counts is the largest buffer a decoder is told to allocate: a GIF's logical screen or its
first image if larger, a TIFF's first image or its tile if larger, a WebP's VP8X canvas.

Example:

>>> import struct, tempfile, zlib
>>> ihdr = struct.pack(">IIBBBBB", 32000, 32000, 8, 2, 0, 0, 0)
>>> with tempfile.NamedTemporaryFile(suffix=".bin") as f:
...     _ = f.write(b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I", 13) + b"IHDR" + ihdr); f.flush()
...     image_size(f.name)
ImageSize(format='PNG', width=32000, height=32000)
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, NamedTuple

# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_MAX_SEGMENTS = 10_000  # markers before the frame header; a real JPEG has < 50
_MAX_JUNK = 65536  # bytes skipped to find a JPEG marker after a segment
_MAX_TIFF_ENTRIES = 4096


class HeaderError(ValueError):
    """The bytes are not a readable header; ``str(error)`` is a one-line reason."""


class ImageSize(NamedTuple):
    """``format`` (``"PNG"``, ``"JPEG"``, ...) and the declared ``width`` x ``height``."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _read(handle: BinaryIO, size: int, what: str) -> bytes:
    data = handle.read(size)
    if len(data) < size:
        raise HeaderError(f"truncated {what} header")
    return data


def _png(handle: BinaryIO) -> ImageSize:
    data = _read(handle, 24, "PNG")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise HeaderError("corrupt PNG header: no IHDR chunk first")
    width, height = struct.unpack(">II", data[16:24])
    return ImageSize("PNG", width, height)


def _jpeg(handle: BinaryIO) -> ImageSize:
    _read(handle, 2, "JPEG")  # SOI
    for _ in range(_MAX_SEGMENTS):
        if _read(handle, 1, "JPEG") != b"\xff":  # junk before a marker: libjpeg skips it
            junk = handle.read(_MAX_JUNK)
            if b"\xff" not in junk:
                raise HeaderError("corrupt JPEG header: no marker where one is due")
            handle.seek(junk.index(b"\xff") + 1 - len(junk), os.SEEK_CUR)
        marker = _read(handle, 1, "JPEG")[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(handle, 1, "JPEG")[0]
        if marker in _STANDALONE or marker == 0xD8:
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            raise HeaderError("corrupt JPEG header: no frame header (SOF) before the image data")
        (length,) = struct.unpack(">H", _read(handle, 2, "JPEG"))
        if length < 2:
            raise HeaderError("corrupt JPEG header: segment length < 2")
        if marker in _SOF:
            _, height, width = struct.unpack(">BHH", _read(handle, 5, "JPEG"))
            if height == 0:  # height given later by a DNL marker: libjpeg cannot decode it
                raise HeaderError("JPEG without a height in its frame header (DNL) is not read")
            return ImageSize("JPEG", width, height)
        handle.seek(length - 2, os.SEEK_CUR)
    raise HeaderError(f"corrupt JPEG header: no frame header in its first {_MAX_SEGMENTS} "
                      "segments")


def _gif(handle: BinaryIO) -> ImageSize:
    data = _read(handle, 13, "GIF")
    width, height, packed = struct.unpack("<HHB", data[6:11])
    if packed & 0x80:  # global colour table
        handle.seek(3 * 2 ** ((packed & 7) + 1), os.SEEK_CUR)
    for _ in range(_MAX_SEGMENTS):  # extensions, then the first image descriptor
        introducer = handle.read(1)
        if introducer == b"\x2c":
            left, top, w, h = struct.unpack("<HHHH", _read(handle, 8, "GIF"))
            return ImageSize("GIF", max(width, left + w), max(height, top + h))
        if introducer != b"\x21":
            break  # trailer or junk: the logical screen is what the decoder allocates
        _read(handle, 1, "GIF")  # extension label
        while (size := _read(handle, 1, "GIF")[0]) != 0:
            handle.seek(size, os.SEEK_CUR)
    return ImageSize("GIF", width, height)


def _bmp(handle: BinaryIO) -> ImageSize:
    data = _read(handle, 26, "BMP")
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    elif header >= 16:
        width, height = struct.unpack("<ii", data[18:26])
    else:
        raise HeaderError(f"corrupt BMP header: DIB header of {header} bytes")
    return ImageSize("BMP", abs(width), abs(height))  # negative height: rows top-down


def _webp(handle: BinaryIO) -> ImageSize:
    data = _read(handle, 30, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("corrupt WebP header: no VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return ImageSize("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise HeaderError("corrupt WebP header: no VP8L signature")
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageSize("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageSize("WebP", width, height)
    raise HeaderError(f"corrupt WebP header: unknown chunk {chunk!r}")


def _tiff(handle: BinaryIO) -> ImageSize:
    data = _read(handle, 8, "TIFF")
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    handle.seek(offset)
    (count,) = struct.unpack(order + "H", _read(handle, 2, "TIFF"))
    if count > _MAX_TIFF_ENTRIES:
        raise HeaderError(f"corrupt TIFF header: {count} tags in the first directory")
    tags = {}
    for _ in range(count):
        tag, kind, _, value = struct.unpack(order + "HHI4s", _read(handle, 12, "TIFF"))
        if tag in (256, 257, 322, 323) and kind in (3, 4):  # SHORT or LONG, stored inline
            tags[tag] = struct.unpack(order + "H", value[:2])[0] if kind == 3 else \
                struct.unpack(order + "I", value)[0]
    if 256 not in tags or 257 not in tags:
        raise HeaderError("corrupt TIFF header: no image width or length")
    width, height = tags[256], tags[257]
    tile = tags.get(322, 0) * tags.get(323, 0)
    if tile > width * height:  # the decoder's buffer is one tile: report the tile
        return ImageSize("TIFF", tags[322], tags[323])
    return ImageSize("TIFF", width, height)


def image_size(path: str | os.PathLike) -> ImageSize:
    """The format and the size an image file declares, from its first bytes.

    Raises:
        HeaderError: not one of PNG, JPEG, GIF, BMP, WebP, TIFF, or a header cut short or
            inconsistent (``str(error)`` says which).
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        handle.seek(0)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            size = _png(handle)
        elif head.startswith(b"\xff\xd8\xff"):
            size = _jpeg(handle)
        elif head.startswith((b"GIF87a", b"GIF89a")):
            size = _gif(handle)
        elif head.startswith(b"BM"):
            size = _bmp(handle)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            size = _webp(handle)
        elif head.startswith((b"II*\x00", b"MM\x00*")):
            size = _tiff(handle)
        else:
            raise HeaderError("unknown format (PNG, JPEG, GIF, BMP, WebP and TIFF are read)")
    if size.width <= 0 or size.height <= 0:
        raise HeaderError(f"corrupt {size.format} header: declares {size.width} x {size.height}")
    return size

"""Where the source layouts are listed and read: local paths, or a ``scheme://`` filesystem that
an engine registered (`register`; the Beam engine registers Beam's filesystems: ``gs://``,
``s3://``, ...). The layouts (`mclcr_keras.data.sources`), the duplicate check and the media
sniffing go through these few functions, so that a dataset in a bucket is listed by the same code
as one on disk.

Example:

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> open(os.path.join(root, "a.txt"), "w").write("hi")
2
>>> isdir(root), isfile(os.path.join(root, "a.txt")), listdir(root), getsize(root + "/a.txt")
(True, True, ['a.txt'], 2)
>>> isdir("nope://bucket/data")
Traceback (most recent call last):
...
OSError: no filesystem for nope:// paths here (remote inputs need --engine beam)
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import IO, Protocol


class Backend(Protocol):
    """What a remote filesystem offers to the listing (all paths absolute, ``scheme://...``)."""

    def isdir(self, path: str) -> bool: ...
    def isfile(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def getsize(self, path: str) -> int: ...
    def open(self, path: str) -> IO[bytes]: ...


_BACKENDS: dict[str, Backend] = {}
# Where build_records and predict run: here (local paths only), or as an Apache Beam pipeline
# (`mclcr_keras.beam`), which registers Beam's filesystems for remote paths.
ENGINES = ("local", "beam")


def register(scheme: str, backend: Backend) -> None:
    """Routes ``scheme://`` paths to ``backend`` (``scheme`` without ``://``)."""
    _BACKENDS[scheme] = backend


def scheme_of(path: str) -> str | None:
    """``"gs"`` for ``gs://b/x``; ``None`` for a local path."""
    text = os.fspath(path)
    return text.split("://", 1)[0] if "://" in text else None


def _remote(path: str) -> Backend | None:
    scheme = scheme_of(path)
    if scheme is None:
        return None
    if scheme not in _BACKENDS:
        raise OSError(f"no filesystem for {scheme}:// paths here (remote inputs need "
                      f"--engine beam)")
    return _BACKENDS[scheme]


def abspath(path: str) -> str:
    """Local paths made absolute; remote paths are already."""
    return os.fspath(path) if scheme_of(path) else os.path.abspath(path)


def relpath(path: str, start: str) -> str:
    if scheme_of(path):
        return path[len(start.rstrip("/")) + 1:] if path.startswith(start.rstrip("/") + "/") \
            else path
    return os.path.relpath(path, start)


def isdir(path: str) -> bool:
    remote = _remote(path)
    return remote.isdir(path) if remote else os.path.isdir(path)


def isfile(path: str) -> bool:
    remote = _remote(path)
    return remote.isfile(path) if remote else os.path.isfile(path)


def listdir(path: str) -> list[str]:
    remote = _remote(path)
    return remote.listdir(path) if remote else os.listdir(path)


def getsize(path: str) -> int:
    remote = _remote(path)
    return remote.getsize(path) if remote else os.path.getsize(path)


def open_binary(path: str) -> IO[bytes]:
    remote = _remote(path)
    return remote.open(path) if remote else open(path, "rb")


def open_text(path: str, newline: str | None = None) -> IO[str]:
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline=newline)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk` (top-down; sort ``dirnames`` in place to order the descent)."""
    if _remote(top) is None:
        yield from os.walk(top)
        return
    names = listdir(top)
    dirnames = [n for n in names if isdir(f"{top.rstrip('/')}/{n}")]
    filenames = [n for n in names if n not in dirnames]
    yield top, dirnames, filenames
    for name in dirnames:
        yield from walk(f"{top.rstrip('/')}/{name}")


def sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open_binary(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

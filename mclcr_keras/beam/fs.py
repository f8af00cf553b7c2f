"""Files on any Beam filesystem: local paths, ``gs://`` and ``s3://`` (with Beam's extras).

Only what the Beam engines need: join, exists, match, whole-file read and atomic write (a
temporary name, then a rename, so that a retried bundle never leaves half a file), and
`local_copy` for readers that need a local file (OpenCV's video decoder): a local path is used in
place, anything else is copied to a temporary file first.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> write_bytes(join(folder, "a", "b.txt"), b"hi")
>>> read_bytes(join(folder, "a", "b.txt")), exists(join(folder, "a", "c.txt"))
(b'hi', False)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence

_CHUNK = 8 << 20


def is_local(path: str) -> bool:
    """A path of this machine's filesystem (no ``scheme://``)."""
    return "://" not in path


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(base, *parts)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(base, *parts)


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(path)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def match(pattern: str) -> list[str]:
    """The files matching a glob (``**`` included), sorted."""
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in found)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        with open(path, "rb") as handle:
            return handle.read()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


def _makedirs_for(path: str) -> None:
    if is_local(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` under a temporary name, then renames it to ``path`` (replacing it)."""
    write_chunks(path, [data])


def write_chunks(path: str, chunks) -> None:
    """Writes the byte strings of ``chunks`` in order, atomically as `write_bytes`."""
    _makedirs_for(path)
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    if is_local(path):
        with open(temporary, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(temporary, mime_type="application/octet-stream") as handle:
        for chunk in chunks:
            handle.write(chunk)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def concatenate(sources: Sequence[str], target: str) -> None:
    """``target`` = the bytes of ``sources`` one after the other (written atomically)."""
    def chunks() -> Iterator[bytes]:
        for source in sources:
            if is_local(source):
                with open(source, "rb") as handle:
                    while block := handle.read(_CHUNK):
                        yield block
            else:
                yield read_bytes(source)

    write_chunks(target, chunks())


def delete_tree(path: str) -> None:
    """Removes a folder and everything under it (nothing if it does not exist)."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(path):
        FileSystems.delete([path])


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file with the content of ``path``: ``path`` itself when it is local, else a
    temporary copy (same extension) deleted on exit."""
    if is_local(path):
        yield path
        return
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix="mclcr_")
    try:
        with os.fdopen(handle, "wb") as out, FileSystems.open(path) as source:
            while block := source.read(_CHUNK):
                out.write(block)
        yield temporary
    finally:
        os.remove(temporary)

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

from mclcr_keras.data import storage

_CHUNK = 8 << 20


def _open(path: str):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    # Never guess a compression from the name: the bytes are what they are.
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _create(path: str):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.create(path, mime_type="application/octet-stream",
                              compression_type=CompressionTypes.UNCOMPRESSED)


def is_local(path: str) -> bool:
    """A path of this machine's filesystem (no ``scheme://``)."""
    return storage.scheme_of(path) is None


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
    with _open(path) as handle:
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

    with _create(temporary) as handle:
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


def has_any(folder: str) -> bool:
    """Whether anything lies under ``folder`` (on an object store: any name with that prefix)."""
    if is_local(folder):
        return os.path.exists(folder)
    return bool(match(folder.rstrip("/") + "/**"))


def delete_files(paths: Sequence[str]) -> None:
    for path in paths:
        if is_local(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        else:
            from apache_beam.io.filesystems import FileSystems

            FileSystems.delete([path])


def delete_tree(folder: str) -> None:
    """Removes a folder and everything under it (nothing if it does not exist)."""
    if is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        delete_files(match(folder.rstrip("/") + "/**"))


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file with the content of ``path``: ``path`` itself when it is local, else a
    temporary copy (same extension) deleted on exit."""
    if is_local(path):
        yield path
        return
    suffix = os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix="mclcr_")
    try:
        with os.fdopen(handle, "wb") as out, _open(path) as source:
            while block := source.read(_CHUNK):
                out.write(block)
        yield temporary
    finally:
        os.remove(temporary)


class Listing:
    """`mclcr_keras.data.storage.Backend` on Beam's filesystems, for listing a dataset in a
    bucket: the first question about a folder lists everything under it once (one ``match`` of
    ``folder/**``: object stores have no folders, only names), and later questions about paths
    under it are answered from that listing."""

    def __init__(self):
        self._trees: dict[str, dict[str, int]] = {}

    def _tree(self, path: str, list_it: bool = True) -> dict[str, int] | None:
        path = path.rstrip("/")
        for prefix, tree in self._trees.items():
            if path == prefix or path.startswith(prefix + "/"):
                return tree
        if not list_it:
            return None
        from apache_beam.io.filesystems import FileSystems

        found = FileSystems.match([path + "/**"])[0].metadata_list
        self._trees[path] = {m.path: m.size_in_bytes for m in found}
        return self._trees[path]

    def isdir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(name.startswith(prefix) for name in self._tree(path))

    def isfile(self, path: str) -> bool:
        tree = self._tree(path, list_it=False)
        if tree is not None:
            return path in tree
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.exists(path) and not self.isdir(path)

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({name[len(prefix):].split("/", 1)[0] for name in self._tree(path)
                       if name.startswith(prefix)})

    def getsize(self, path: str) -> int:
        tree = self._tree(path, list_it=False)
        if tree is not None and path in tree:
            return tree[path]
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes

    def open(self, path: str):
        return _open(path)


def register_listing(*paths: str | None) -> None:
    """Lets the source layouts list and read the remote ones of ``paths`` through Beam."""
    from mclcr_keras.data import storage

    for path in paths:
        scheme = storage.scheme_of(path) if path else None
        if scheme:
            storage.register(scheme, Listing())

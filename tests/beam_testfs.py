"""``testfs://``: a Beam filesystem with an object store's semantics (no folders, only names;
``match`` by prefix) kept in a local folder, so that the Beam engine's remote paths are exercised
here without a network. Importing this module registers it with Beam (Beam finds filesystems by
subclass); it is a stand-in for GCS/S3, which this machine cannot reach.

    import beam_testfs
    beam_testfs.ROOT = "/tmp/bucket-root"   # testfs://b/x -> /tmp/bucket-root/b/x
"""

from __future__ import annotations

import os
import shutil

from apache_beam.io.filesystem import BeamIOError, FileMetadata, FileSystem
from apache_beam.io.localfilesystem import LocalFileSystem

SCHEME = "testfs"
PREFIX = f"{SCHEME}://"
ROOT = os.environ.get("MCLCR_TESTFS_ROOT", "/tmp/mclcr_testfs")


def local(path: str) -> str:
    if not path.startswith(PREFIX):
        raise ValueError(f"not a {PREFIX} path: {path}")
    return os.path.join(ROOT, path[len(PREFIX):])


def remote(path: str) -> str:
    return PREFIX + os.path.relpath(path, ROOT)


class ObjectStore(FileSystem):
    """Object-store semantics over ``ROOT`` (what GCS and S3 look like to Beam)."""

    _disk = LocalFileSystem(None)

    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass  # no folders in an object store

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        base = local(dir_or_prefix)
        parent = os.path.dirname(base)
        if not os.path.isdir(parent):
            return
        for directory, _, names in os.walk(parent):
            for name in names:
                path = os.path.join(directory, name)
                if path.startswith(base):
                    yield FileMetadata(remote(path), os.path.getsize(path),
                                       os.path.getmtime(path))

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        return self._disk.create(local(path), mime_type, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        if not os.path.isfile(local(path)):
            raise BeamIOError("Open operation failed", {path: FileNotFoundError(path)})
        return self._disk.open(local(path), mime_type, compression_type)

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(local(destination)), exist_ok=True)
            shutil.copyfile(local(source), local(destination))

    def rename(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(local(destination)), exist_ok=True)
            os.replace(local(source), local(destination))

    def exists(self, path):
        return os.path.isfile(local(path))  # an object, never a "folder"

    def size(self, path):
        return os.path.getsize(local(path))

    def last_updated(self, path):
        return os.path.getmtime(local(path))

    def checksum(self, path):
        return str(os.path.getsize(local(path)))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        for path in paths:
            target = local(path)
            if os.path.isdir(target):  # a prefix: every object under it (GCS's delete does)
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)

    def report_lineage(self, path, lineage):
        pass

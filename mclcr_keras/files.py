"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Every table, report and state file of the package is written here: to ``<path>.tmp``, flushed and
fsync'ed, renamed over ``path``, and the directory entry fsync'ed, so the rename survives
``kill -9`` or a power loss.

Example:

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "state.json")
>>> write_json(path, {"epochs_done": 3, "best": None}, sort_keys=True)
>>> print(open(path).read(), end="")
{
  "best": null,
  "epochs_done": 3
}
>>> read_json(path)
{'best': None, 'epochs_done': 3}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import IO, Any

from mclcr_keras.errors import UsageError

TEMPORARY_SUFFIX = ".tmp"


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync the directory `path`; a no-op where directories cannot be opened (e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[str]], Any]) -> None:
    """Calls ``write(handle)`` on a temporary text file, then renames it to ``path`` durably."""
    path = os.fspath(path)
    temporary = path + TEMPORARY_SUFFIX
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_json(path: str | os.PathLike, data: Any, *, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None, allow_nan: bool = True) -> None:
    """Writes ``data`` as indented JSON (2 spaces, a final newline), atomically."""
    text = json_text(data, sort_keys=sort_keys, default=default, allow_nan=allow_nan)
    write_atomic(path, lambda handle: handle.write(text))


def json_text(data: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None,
              allow_nan: bool = True) -> str:
    """What `write_json` writes: indented JSON (2 spaces) and a final newline."""
    return json.dumps(data, indent=2, sort_keys=sort_keys, default=default,
                      allow_nan=allow_nan) + "\n"


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def link_atomic(source: str, target: str) -> None:
    """Makes `target` the same file as `source` (hard link, else copy), replaced atomically."""
    temporary = target + TEMPORARY_SUFFIX
    if os.path.lexists(temporary):
        os.remove(temporary)
    try:
        os.link(source, temporary)
    except OSError:  # file systems without hard links
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _first_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """Raises `UsageError` unless ``path`` is (or can be created as) a writable folder.

    Checked before any work, so that hours of scoring never end on "Not a directory". Nothing is
    created. Remote paths (``gs://...``) are left to the file system.
    """
    path = os.fspath(path)
    if "://" in path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path} exists and is not a directory")
    existing = _first_existing(path)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {path} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == os.path.abspath(path) else (
            f"cannot be created: {existing} is not writable")
        raise UsageError(f"{flag} {path} {what}")


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Raises `UsageError` unless the file ``path`` can be written (its folder creatable)."""
    path = os.fspath(path)
    if "://" in path:
        return
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path} is not writable")
    check_output_dir(os.path.dirname(os.path.abspath(path)), flag + " folder")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read((1 << 20)), b""):
            digest.update(chunk)
    return digest.hexdigest()

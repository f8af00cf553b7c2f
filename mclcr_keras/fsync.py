"""Durable renames: flush a directory entry so a rename survives a crash (`kill -9`, power loss)."""

import os


def fsync_dir(path: str) -> None:
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

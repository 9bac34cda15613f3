"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Temp file in the same directory, fsync, rename over the target, fsync the directory
(so the rename itself survives a power cut). Knows nothing about jobs.
"""
import json
import os
import tempfile
from typing import Any


def write_bytes(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Atomically replace ``path`` with ``data``; ``durable=False`` skips the fsyncs
    (for files like progress snapshots where losing the last update is harmless)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(directory)


def write_json(path: str, obj: Any, mode: int = 0o600, durable: bool = True) -> None:
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"), mode, durable)


def read_json(path: str) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Writing files so that a reader (another fold process, a resumed run) sees the whole file or none."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` to write a temporary file beside `path`, then rename it into place.

    The rename is atomic on one file system, so `path` is never half written: a process killed
    midway leaves the old file (or none); one killed outright leaves a hidden `.tmp-<pid>-...`
    file that `remove_stale_temporaries` clears. The parent folder is created; the file gets the
    usual permissions (the umask's), not a temporary file's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporary files `write_atomically` left in `folder` for processes that are no
    longer running (killed mid-write), and this process's own: call it before writing there."""
    for tmp in Path(folder).glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[1])
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except (ValueError, IndexError, ProcessLookupError):
            alive = False
        except PermissionError:  # alive, someone else's
            alive = True
        if not alive:
            tmp.unlink(missing_ok=True)


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomically(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomically(path: str | Path, obj, **dumps) -> None:
    """`obj` as JSON (`json.dumps` keyword arguments: `dumps`, default indent=1)."""
    write_text_atomically(path, json.dumps(obj, **{"indent": 1, **dumps}))


__all__ = [
    "remove_stale_temporaries",
    "write_atomically", "write_bytes_atomically", "write_json_atomically", "write_text_atomically"]

"""Content-addressed image files of the submission store: atomic writes and the scan for orphans.

A file is named by the SHA-256 of its bytes, ``files/<first two hex digits>/<sha256>.<ext>``, so the name never
comes from the user and the same image is stored once. Writes go to a temporary ``.tmp-*`` file in the final
folder, are fsynced and then renamed into place (``os.replace`` is atomic on POSIX and Windows); the folder is
fsynced too, so a crash leaves either the whole file or nothing under the final name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Collection
from contextlib import suppress
from pathlib import Path

__all__ = ["TEMP_PREFIX", "content_path", "scan_orphans", "write_atomic"]

TEMP_PREFIX = ".tmp-"
_STORED_NAME = re.compile(r"([0-9a-f]{64})\.(dcm|png|tiff)")


def content_path(digest: str, extension: str) -> Path:
    """The path, relative to the store root, of the file with this SHA-256 hex digest and extension."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest) or extension not in ("dcm", "png", "tiff"):
        raise ValueError(f"not a stored file name: {digest!r}.{extension!r}")
    return Path("files", digest[:2], f"{digest}.{extension}")


def _fsync_dir(folder: Path) -> None:
    with suppress(OSError):  # not every platform/file system lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(final: Path, data: bytes) -> bool:
    """Write `data` to `final` atomically unless `final` already holds exactly these bytes.

    Returns
    -------
    bool
        True if the file was written, False if an identical file was already there.
    """
    if final.is_file():
        with suppress(OSError):
            if hashlib.sha256(final.read_bytes()).digest() == hashlib.sha256(data).digest():
                return False
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=TEMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(final.parent)
    return True


def scan_orphans(files_dir: Path, known_digests: Collection[str]) -> list[Path]:
    """Stored files under `files_dir` whose digest is not in `known_digests`, plus leftover temporary files.

    Files that do not follow the store's naming are not ours and are ignored.
    """
    found = []
    for path in files_dir.glob("*/*"):
        if not path.is_file():
            continue
        match = _STORED_NAME.fullmatch(path.name)
        if (
            path.name.startswith(TEMP_PREFIX)
            or match
            and path.parent.name == path.name[:2]
            and match.group(1) not in known_digests
        ):
            found.append(path)
    return sorted(found)

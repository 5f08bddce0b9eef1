"""Content-addressed files of the submission store: names, atomic writes, orphan scan."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mammo_utils.submissions import files as store_files
from mammo_utils.submissions.files import TEMP_PREFIX, content_path, scan_orphans, write_atomic


def test_content_path_is_derived_from_the_digest_only():
    digest = hashlib.sha256(b"synthetic").hexdigest()
    assert content_path(digest, "png") == Path("files", digest[:2], f"{digest}.png")
    for bad in (("../../etc/passwd", "png"), (digest.upper(), "png"), (digest, "exe"), (digest[:-1], "dcm")):
        with pytest.raises(ValueError, match="not a stored file name"):
            content_path(*bad)


def test_write_atomic_writes_skips_identical_and_repairs_damaged_files(tmp_path):
    final = tmp_path / "files" / "ab" / "x.png"
    assert write_atomic(final, b"synthetic bytes") is True and final.read_bytes() == b"synthetic bytes"
    assert write_atomic(final, b"synthetic bytes") is False
    final.write_bytes(b"damaged")
    assert write_atomic(final, b"synthetic bytes") is True and final.read_bytes() == b"synthetic bytes"
    assert [path.name for path in final.parent.iterdir()] == ["x.png"]  # no temporary file left behind


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def broken_replace(source, target):
        raise OSError(28, "No space left on device (synthetic)")

    monkeypatch.setattr(store_files.os, "replace", broken_replace)
    final = tmp_path / "files" / "cd" / "y.png"
    with pytest.raises(OSError, match="No space left"):
        write_atomic(final, b"synthetic")
    assert list(final.parent.iterdir()) == []


def test_scan_orphans_finds_unknown_stored_files_and_temporaries_only(tmp_path):
    files = tmp_path / "files"
    known, unknown = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    paths = {name: tmp_path / content_path(digest, "png") for name, digest in (("known", known), ("unknown", unknown))}
    for path in paths.values():
        write_atomic(path, b"synthetic")
    temporary = files / unknown[:2] / f"{TEMP_PREFIX}abc.part"
    temporary.write_bytes(b"half")
    foreign = files / "notes" / "readme.txt"
    foreign.parent.mkdir()
    foreign.write_text("not a stored file")
    misplaced = files / "zz" / f"{unknown}.png"
    misplaced.parent.mkdir()
    misplaced.write_bytes(b"synthetic")
    assert scan_orphans(files, {known}) == sorted([paths["unknown"], temporary])
    assert scan_orphans(files, {known, unknown}) == [temporary]
    assert scan_orphans(tmp_path / "absent", set()) == []
    assert os.path.exists(foreign) and os.path.exists(misplaced)

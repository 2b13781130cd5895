"""Atomic writes: a reader sees the whole file or none, and a killed writer's leftovers are cleared."""

from __future__ import annotations

import json
import os
import stat

import pytest

from modeling_mie.files import (
    remove_stale_temporaries,
    write_atomically,
    write_bytes_atomically,
    write_json_atomically,
    write_text_atomically,
)


def test_writes_replace_the_whole_file_and_create_the_folder(tmp_path):
    path = tmp_path / "new" / "folder" / "a.json"
    write_json_atomically(path, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert path.read_text().startswith('{\n "a"')  # indent 1 by default, keywords passed on
    write_text_atomically(path, "x")
    assert path.read_text() == "x"
    write_bytes_atomically(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not a temporary file's 0600


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def half(tmp):
        tmp.write_text("ne")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        write_atomically(path, half)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / ".tmp-999999999-0123abcd-clip.arrow"
    mine = tmp_path / f".tmp-{os.getpid()}-0123abcd-clip.arrow"
    odd = tmp_path / ".tmp-notapid-clip.arrow"
    for p in (dead, mine, odd):
        p.write_bytes(b"partial")
    kept = tmp_path / "clip.arrow"
    kept.write_bytes(b"whole")
    remove_stale_temporaries(tmp_path)
    # this process is writing nothing now, so its own leftovers are stale too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.arrow"]

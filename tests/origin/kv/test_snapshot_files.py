"""Snapshot files: a write replaces the whole file or nothing, a missing file reads as None, and a
leftover temporary file (a crash mid-write) is never read and is replaced by the next write."""

from __future__ import annotations

from pathlib import Path

from plugin_streams.origin.kv.snapshot_files import TEMP_SUFFIX, SnapshotFiles


def test_a_write_replaces_the_snapshot_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    files = SnapshotFiles(str(tmp_path / "kv"))
    assert files.read("app") is None
    files.write("app", b"first")
    files.write("app", b"second")
    assert files.read("app") == b"second"
    assert sorted(path.name for path in (tmp_path / "kv").iterdir()) == ["app.snapshot"]


def test_a_torn_temporary_file_is_not_read_and_is_replaced(tmp_path: Path) -> None:
    files = SnapshotFiles(str(tmp_path))
    files.write("app", b"whole")
    (tmp_path / ("app" + TEMP_SUFFIX)).write_bytes(b"wh")
    assert files.read("app") == b"whole"
    files.write("app", b"newer")
    assert files.read("app") == b"newer" and not (tmp_path / ("app" + TEMP_SUFFIX)).exists()


def test_databases_whose_names_look_like_file_suffixes_do_not_share_files(tmp_path: Path) -> None:
    files = SnapshotFiles(str(tmp_path))
    names = ["a", "a.snapshot", "a.snapshot.tmp", "a.tmp"]
    for name in names:
        files.write(name, name.encode())
    assert [files.read(name) for name in names] == [name.encode() for name in names]

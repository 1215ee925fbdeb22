"""Atomic writes: stale temporaries of killed writes are removed; modes follow the umask."""

import os
import stat

import pytest

from cryomotion.atomic_write import atomic_path, temporary_name_pattern


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        target = tmp_path / "out.txt"
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            assert _mode(tmp) == 0o600  # mkstemp's, while it is being written
        assert _mode(target) == 0o666 & ~umask
    finally:
        os.umask(old)


def test_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "last.pt"
    stale = tmp_path / ".last.pt.ab_cd123.pt"  # what a killed write leaves
    other_target = tmp_path / ".other.pt.ab_cd123.pt"
    not_ours = [tmp_path / ".last.pt.short.pt", tmp_path / ".last.pt.ab_cd123.pt.bak",
                tmp_path / "last.pt.ab_cd123.pt"]  # fmt: skip
    for path in [stale, other_target, *not_ours]:
        path.write_text("old")
    assert temporary_name_pattern(target).fullmatch(stale.name)
    with atomic_path(target) as tmp:
        assert not stale.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert other_target.exists() and all(path.exists() for path in not_ours)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".last.pt.")) == [
        ".last.pt.ab_cd123.pt.bak", ".last.pt.short.pt"]  # fmt: skip


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "a.yaml"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["a.yaml"]

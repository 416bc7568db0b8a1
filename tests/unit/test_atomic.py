"""Atomic local writes: the final name holds the old content or the whole new one, never a part."""

from __future__ import annotations

import pytest

from pretrain.atomic import partial_path, replaced_atomically


def test_the_files_appear_on_success_and_no_temporary_is_left(tmp_path):
    first, second = tmp_path / "model.safetensors", tmp_path / "config.json"
    with replaced_atomically(first, second) as (tmp_first, tmp_second):
        tmp_first.write_bytes(b"weights")
        tmp_second.write_text("{}")
        assert not first.exists() and not second.exists()  # nothing under the final names yet
    assert (first.read_bytes(), second.read_text()) == (b"weights", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    final = tmp_path / "run.json"
    final.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with replaced_atomically(final) as (tmp,):
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_stale_temporary_from_a_crash_is_replaced_and_links_swap_atomically(tmp_path):
    (tmp_path / "step-1").mkdir()
    (tmp_path / "step-2").mkdir()
    link = tmp_path / "last"
    link.symlink_to("step-1")
    partial_path(link).symlink_to("step-1")  # left by a crash between symlink and rename
    assert partial_path(link).name == ".last.partial"
    with replaced_atomically(link) as (tmp,):
        tmp.symlink_to("step-2")
    assert link.readlink().name == "step-2"
    assert not partial_path(link).is_symlink()

"""Inputs and shard folders that are broken on purpose: bad directory entries, damaged tars,
manifests that point outside their folder (issue 13 §2, §3, §7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.shards import build_shards, read_manifest

BAD_NAME = b"clip \xff\xfe.mp4"  # not valid UTF-8


@pytest.fixture(scope="module")
def tree_with_bad_entries(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_entries") / "videos"
    write_folder_tree(root, classes=["run", "walk"], videos_per_class=2)
    os.symlink(root / "run" / "missing.mp4", root / "run" / "dangling.mp4")
    os.symlink(root / "walk" / "loop.mp4", root / "walk" / "loop.mp4")  # ELOOP on stat
    good = (root / "run" / "clip 0.mp4").read_bytes()
    with open(os.path.join(os.fsencode(root / "walk"), BAD_NAME), "wb") as handle:
        handle.write(good)
    return root


def test_bad_directory_entries_are_skipped_and_listed(tree_with_bad_entries, tmp_path):
    summary = build_shards("folder", str(tree_with_bad_entries), str(tmp_path / "out"), labels_from_folders=True)
    assert (summary.videos, summary.skipped) == (4, 3)
    rows = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    reasons = {row["path"]: row["reason"] for row in rows}
    assert all(row["kind"] == "video" for row in rows)
    assert reasons["run/dangling.mp4"].startswith("unreadable (dangling symlink")
    assert reasons["walk/loop.mp4"].startswith("unreadable (symlink loop")
    assert reasons["walk/clip \\xff\\xfe.mp4"] == "file name is not valid UTF-8"
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest.totals["samples"] == 4
    assert (manifest.totals["input_videos"], manifest.totals["skipped_videos"]) == (7, 3)


def test_bad_directory_entries_are_fatal_under_strict(tree_with_bad_entries, tmp_path, capsys):
    assert main(["shards", "build", "folder", str(tree_with_bad_entries), str(tmp_path / "out"),
                 "--labels-from-folders", "--strict"]) == 1
    err = capsys.readouterr().err
    assert "dangling.mp4: unreadable (dangling symlink" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()

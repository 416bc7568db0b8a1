"""Inputs and shard folders that are broken on purpose: bad directory entries, damaged tars,
manifests that point outside their folder (issue 13 §2, §3, §7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.shards import BuildOptions, ShardsError, build_shards, read_manifest

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
    summary = build_shards(
        "folder", str(tree_with_bad_entries), str(tmp_path / "out"), BuildOptions(labels_from_folders=True)
    )
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
    assert (
        main(
            [
                "shards",
                "build",
                "folder",
                str(tree_with_bad_entries),
                str(tmp_path / "out"),
                "--labels-from-folders",
                "--strict",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "dangling.mp4: unreadable (dangling symlink" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_shards")
    write_folder_tree(root / "videos", classes=["run", "walk"], videos_per_class=2, suffixes=(".avi",))
    build_shards(
        "folder",
        str(root / "videos"),
        str(root / "out"),
        BuildOptions(shard_size_mb=0.01, labels_from_folders=True),
    )
    assert len(read_manifest(str(root / "out")).shards) == 4
    return root / "out"


def _copy(folder: Path, target: Path) -> Path:
    target.mkdir()
    for path in folder.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


@pytest.fixture
def damaged_shards(small_shards, tmp_path) -> tuple[Path, list[str]]:
    """Shard 0 truncated inside its first video, shard 2's first tar header overwritten."""
    copy = _copy(small_shards, tmp_path / "damaged")
    names = [shard.name for shard in read_manifest(str(copy)).shards]
    truncated = copy / names[0]
    truncated.write_bytes(truncated.read_bytes()[:3000])
    header = copy / names[2]
    data = bytearray(header.read_bytes())
    data[0:512] = b"\x7f" * 512
    header.write_bytes(bytes(data))
    return copy, names


def test_verify_reports_every_damaged_tar_and_checks_the_rest(damaged_shards, capsys):
    folder, names = damaged_shards
    assert main(["shards", "verify", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "FAILED" in err
    assert f"{names[0]}: unreadable tar (unexpected end of data)" in err
    assert f"{names[2]}: unreadable tar (" in err
    assert not any(name in err for name in (names[1], names[3]))  # checked, and fine
    assert "2 of 4 shards bad" in err


def test_inspect_reports_every_damaged_tar_and_counts_the_rest(damaged_shards, capsys):
    folder, names = damaged_shards
    assert main(["shards", "inspect", str(folder), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["samples"] == 2 == sum(report["classes"].values())
    assert [failure.split(":")[0] for failure in report["failures"]] == [names[0], names[2]]
    assert "unreadable tar" in captured.err and "Traceback" not in captured.err
    assert main(["shards", "inspect", str(folder)]) == 1
    text = capsys.readouterr()
    assert (
        "2 samples in 4 shards" in text.out
        and f"{names[0]}: unreadable tar (unexpected end of data)" in text.err
    )


def _rewrite_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_file_or_a_manifest_without_shards_gives_one_line(small_shards, tmp_path, capsys):
    shard = sorted(small_shards.glob("shard-*.tar"))[0]
    with pytest.raises(ShardsError, match="a file, not a shard directory"):
        read_manifest(str(shard))
    assert main(["shards", "inspect", str(shard)]) == 1
    assert "a file, not a shard directory" in capsys.readouterr().err
    assert main(["pretrain", "tiny", f"data.shards={shard}", f"trainer.output_dir={tmp_path}"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"tubelet: error: {shard}: a file, not a shard directory (give the folder holding manifest.json)"
    )
    copy = _copy(small_shards, tmp_path / "no_shards")
    _rewrite_manifest(copy, lambda data: data.pop("shards"))
    assert main(["shards", "verify", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{copy}/manifest.json: no 'shards' list" in err and "Traceback" not in err


@pytest.mark.parametrize("escape", ["../outside/shard-000001.tar", "{outside}/shard-000001.tar", ".."])
def test_manifest_shard_names_outside_the_folder_are_refused(small_shards, tmp_path, capsys, escape):
    copy = _copy(small_shards, tmp_path / "shards")
    outside = _copy(small_shards, tmp_path / "outside")  # a valid shard the name would reach
    name = escape.format(outside=outside)
    _rewrite_manifest(copy, lambda data: data["shards"][1].update(name=name))
    with pytest.raises(ShardsError, match="is not a file name inside the shard folder"):
        read_manifest(str(copy))
    assert main(["shards", "verify", str(copy), "--no-decode"]) == 1
    assert f"shard name {name!r} is not a file name inside the shard folder" in capsys.readouterr().err
    _rewrite_manifest(copy, lambda data: data["shards"][1].update(name="shard-000001.tar"))
    _rewrite_manifest(copy, lambda data: data["splits"].update({"1": {"shards": {"train": {name: 1}}}}))
    with pytest.raises(ShardsError, match="refusing it"):
        read_manifest(str(copy))

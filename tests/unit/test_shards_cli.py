"""`tubelet shards build|inspect|verify` and `tubelet bench shards` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from pretrain.cli import main
from pretrain.data.generated.corpora import (
    write_corrupt_video,
    write_folder_tree,
    write_hmdb51_tree,
    write_ucf101_tree,
)
from pretrain.data.shards import read_manifest


@pytest.fixture(scope="module")
def hmdb_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_hmdb51_tree(root / "hmdb", classes=2, videos_per_class=4)
    write_corrupt_video(root / "hmdb" / "hmdb51_org" / "catch" / "broken clip!.avi", "not-video")
    assert (
        main(["shards", "build", "hmdb51", str(root / "hmdb"), str(root / "out"), "--shard-size-mb", "0.02"])
        == 0
    )
    return root


def test_build_prints_a_summary(hmdb_shards, capsys):
    assert (
        main(
            [
                "shards",
                "build",
                "hmdb51",
                str(hmdb_shards / "hmdb"),
                str(hmdb_shards / "out"),
                "--shard-size-mb",
                "0.02",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "hmdb51: 8 videos (0.1 min of video)" in out and "skipped 1 bad video(s)" in out
    assert "shard(s) resumed" in out


def test_inspect_json(hmdb_shards, capsys):
    assert main(["shards", "inspect", str(hmdb_shards / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 8 and report["skipped_videos"] == 1
    assert report["splits"]["2"] == {"test": 2, "train": 4, "unused": 2}
    assert report["classes"] == {"brush_hair": 4, "cartwheel": 4}
    assert report["codecs"] == {"mpeg4": 8} and report["fps"] == {"30": 8}


def test_folder_build_with_a_dataset_name(tmp_path, capsys):
    write_folder_tree(tmp_path / "k", classes=["abseiling", "air drumming"], videos_per_class=1)
    assert (
        main(
            [
                "shards",
                "build",
                "folder",
                str(tmp_path / "k"),
                str(tmp_path / "out"),
                "--labels-from-folders",
                "--name",
                "kinetics400",
            ]
        )
        == 0
    )
    assert "kinetics400: 2 videos" in capsys.readouterr().out
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest.dataset == "kinetics400" and manifest.classes == ["abseiling", "air drumming"]


def test_inspect_text(hmdb_shards, capsys):
    assert main(["shards", "inspect", str(hmdb_shards / "out")]) == 0
    out = capsys.readouterr().out
    assert (
        "8 samples" in out
        and "split 1: test 2, train 4, unused 2" in out
        and "resolutions (1): 80x64 8" in out
    )


def test_verify_ok_and_failure_exit_codes(hmdb_shards, capsys):
    assert main(["shards", "verify", str(hmdb_shards / "out")]) == 0
    assert "OK:" in capsys.readouterr().out
    shard = sorted((hmdb_shards / "out").glob("shard-*.tar"))[0]
    original = shard.read_bytes()
    try:
        shard.write_bytes(original[:-2048])
        assert main(["shards", "verify", str(hmdb_shards / "out"), "--no-decode"]) == 1
        err = capsys.readouterr().err
        assert (
            "FAILED" in err
            and f"{shard.name}: {len(original) - 2048} bytes, manifest says {len(original)}" in err
        )
    finally:
        shard.write_bytes(original)


def test_user_mistakes_exit_1_without_traceback(tmp_path, capsys):
    assert main(["shards", "build", "ucf101", str(tmp_path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "tubelet: error:" in err and "ucfTrainTestlist" in err and "Traceback" not in err
    assert main(["shards", "inspect", str(tmp_path)]) == 1
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["shards", "build", "folder", str(tmp_path), str(tmp_path / "out"), "--crf", "99"]) == 1
    assert "crf=99 must be in 0..51" in capsys.readouterr().err
    assert main(["shards", "build", "folder", str(tmp_path), str(tmp_path / "out"), "--preset", "quick"]) == 1
    assert "preset='quick': choose one of ultrafast" in capsys.readouterr().err


def test_strict_split_file_problem_is_fatal_with_file_and_line(tmp_path, capsys):
    write_ucf101_tree(tmp_path / "ucf", classes=2, groups=(1, 22))
    testlist = tmp_path / "ucf" / "ucfTrainTestlist" / "testlist02.txt"
    testlist.write_bytes(testlist.read_bytes() + b"YoYo/v_YoYo_g01_c01.avi\r\n")
    assert main(["shards", "build", "ucf101", str(tmp_path / "ucf"), str(tmp_path / "out"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert f"{testlist}:1: unknown class 'YoYo' (not in classInd.txt)" in err
    assert main(["shards", "build", "ucf101", str(tmp_path / "ucf"), str(tmp_path / "out")]) == 0
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert errors == [
        {
            "kind": "split-file",
            "file": str(testlist),
            "line": 1,
            "reason": "unknown class 'YoYo' (not in classInd.txt)",
        }
    ]


def test_bench_shards_reports_four_runs(tmp_path, capsys):
    assert (
        main(["bench", "shards", str(tmp_path / "corpus"), "--generate", "4", "--frames", "8", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert 0 < report["cpu_scaling_ceiling"] <= 2.5
    assert [(r["mode"], r["workers"]) for r in rows] == [
        ("passthrough", 1),
        ("passthrough", 2),
        ("reencode", 1),
        ("reencode", 2),
    ]
    assert all(r["videos"] == 4 and r["videos_per_s"] > 0 for r in rows)
    assert rows[0]["speedup"] == rows[0]["scaling"] == 1.0 and rows[2]["scaling"] == 1.0
    assert rows[2]["output_mb"] < rows[0]["output_mb"]  # 320x240 -> short side 160
    assert main(["bench", "shards", str(tmp_path / "missing")]) == 1


def _build_args(*flags: str):
    import argparse

    from pretrain.cli.shards import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["shards", "build", "folder", "in", "out", *flags])


def test_build_flags_are_derived_from_build_options():
    import dataclasses

    from pretrain.cli.shards import options_from_args
    from pretrain.config.reference import field_docstrings
    from pretrain.data.shards import BuildOptions

    assert options_from_args(_build_args()) == BuildOptions()  # one owner of the defaults
    args = _build_args(
        "--shard-size-mb",
        "3",
        "--ray",
        "--address",
        "ray://h:1",
        "--fps",
        "12.5",
        "--probe",
        "fast",
        "--labels-from-folders",
        "--test-fraction",
        "0.1",
        "--name",
        "kinetics400",
    )
    assert options_from_args(args) == BuildOptions(
        shard_size_mb=3.0,
        fps=12.5,
        probe="fast",
        labels_from_folders=True,
        test_fraction=0.1,
        name="kinetics400",
    )
    assert (args.ray, args.address) == (True, "ray://h:1")  # how to run, not what to build: not options
    docs = field_docstrings(BuildOptions)
    assert all(docs.get(field.name) for field in dataclasses.fields(BuildOptions))  # each flag has its help

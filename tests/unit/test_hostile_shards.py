"""Shard builds against lying or nonsensical inputs (issue 24 §5-§7 and the Low list)."""

from __future__ import annotations

import json
import socket
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds
from limited_run import another_writer

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.generated.long_video import write_scene_video
from pretrain.data.shards import read_manifest
from pretrain.data.shards.annotations import read_annotations

SECONDS_PER_FRAME = 2500.1  # an average rate of 10/25001 fps


def _write_slideshow(path: Path, frames: int = 10) -> Path:
    """An MP4 whose frames lie 2500.1 s apart (MPEG-4 part 2, 32x32)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(25))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"

        def mux(packets) -> None:
            for packet in packets:
                packet.pts = packet.dts = round(packet.pts * SECONDS_PER_FRAME / packet.time_base)
                packet.duration = None
                container.mux(packet)

        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            mux(stream.encode(frame))
        mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def folder_with_slideshow(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slideshow") / "videos"
    write_folder_tree(root, classes=None, videos_per_class=2, suffixes=(".mp4",))
    _write_slideshow(root / "slideshow.mp4")
    return root


def test_a_video_at_10_per_25001_fps_is_skipped_and_listed_by_a_reencode_build(
    folder_with_slideshow, tmp_path
):
    out = tmp_path / "out"
    assert main(["shards", "build", "folder", str(folder_with_slideshow), str(out), "--reencode"]) == 0
    rows = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(row["path"], row["reason"]) for row in rows] == [
        ("slideshow.mp4", "frame rate 0.000444426 fps is outside 0.1-1000")
    ]
    assert json.loads((out / "manifest.json").read_text())["totals"]["samples"] == 2


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--fps", "1e-9", "fps=1e-09: frame rate 1e-09 fps is outside 0.1-1000"),
        ("--fps", "nan", "fps=nan: must be a finite number"),
        ("--segment-seconds", "inf", "segment_seconds=inf: must be a finite number"),
        ("--segment-seconds", "nan", "segment_seconds=nan: must be a finite number"),
        ("--scene-threshold", "nan", "scene_threshold=nan: must be a finite number"),
        ("--min-segment-seconds", "inf", "min_segment_seconds=inf: must be a finite number"),
    ],
)
def test_nonsense_build_numbers_are_one_line_before_any_work(tmp_path, capsys, flag, value, message):
    assert main(["shards", "build", "folder", str(tmp_path), str(tmp_path / "out"), flag, value]) == 1
    assert capsys.readouterr().err.strip().endswith(message)
    assert not (tmp_path / "out").exists()


def test_a_second_build_into_the_same_folder_is_one_line_naming_the_first(
    folder_with_slideshow, tmp_path, capsys
):
    out = tmp_path / "out"
    with another_writer(out) as holder:
        assert main(["shards", "build", "folder", str(folder_with_slideshow), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"tubelet: error: {out} is being written by another run (pid {holder.pid} on {socket.gethostname()}: "
        "tubelet shards build folder in out); wait for it to finish or choose another output folder"
    )
    assert not (out / "manifest.json").exists()
    assert main(["shards", "build", "folder", str(folder_with_slideshow), str(out)]) == 0  # lock gone with it


def test_nan_inf_and_non_utf8_rows_are_problems_and_spans_are_clipped_to_the_video(tmp_path):
    write_scene_video(tmp_path / "videos" / "film.mp4", [40, 40], fps=8)  # 10 s
    listing = tmp_path / "spans.csv"
    listing.write_bytes(
        b"video,start,end,label\n"
        b"film,0,5,walk\n"
        b"film,nan,5,run\n"
        b"film,2,inf,run\n"
        b"film,5,30,run\n"
        b"film,5,1e300,run\n"
        b"film,20,30,run\n"
        b"film,1,2,\xff\xfe\n"
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "shards",
                "build",
                "annotations",
                str(tmp_path / "videos"),
                str(out),
                "--annotations",
                str(listing),
            ]
        )
        == 0
    )
    samples = wds.WebDataset(read_manifest(str(out)).shard_urls(), shardshuffle=False, empty_check=False)
    spans = sorted(
        (meta["start"], meta["end"]) for meta in (json.loads(sample["json"]) for sample in samples)
    )
    assert spans == [(0.0, 5.0), (5.0, 10.0)]  # 5-30 clipped to the real end
    rows = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [row["reason"] for row in rows] == [
        "start/end 'nan', '5' are not finite numbers",
        "start/end '2', 'inf' are not finite numbers",
        "row is not valid UTF-8",
        "film.mp4 5.0-10.0 s is listed twice",  # 5-1e300, once clipped
        "film.mp4 20.0-30.0 s starts after the video's end (10 s)",
    ]


def test_a_kinetics_row_with_nan_times_is_a_problem(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text(
        "label,youtube_id,time_start,time_end,split\nzumba,abc,nan,10,train\nzumba,abc,0,10,train\n"
    )
    rows, problems = read_annotations(listing, kinetics=True)
    assert [(r.start, r.end) for r in rows] == [(0.0, 10.0)]
    assert [p.describe() for p in problems] == [f"{listing}:2: start/end 'nan', '10' are not finite numbers"]

"""Shard builds against lying or nonsensical inputs (issue 24 §5-§7 and the Low list)."""

from __future__ import annotations

import json
import socket
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from limited_run import another_writer

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree

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

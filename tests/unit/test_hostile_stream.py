"""`predict --stream` on a live-like source whose clock jumps (issue 24 §4) and on nonsense
window/stride values (the Low list)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pretrain.cli import main
from pretrain.models import VideoClassifier
from pretrain.models.arch import ArchSpec
from pretrain.weights import save_export

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)
JUMP_S = 100_000


def _video_whose_clock_jumps(path: Path) -> Path:
    """50 frames at 25 fps (0-1.96 s), then 50 more starting at 100002 s (MJPEG in Matroska)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(25))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuvj420p"
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 2 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                if i >= 50:
                    shift = int(JUMP_S / packet.time_base)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stream") / "export"
    return save_export(VideoClassifier(SPEC, 2), None, folder, class_names=["a", "b"])


def test_a_jump_of_100000_seconds_skips_the_empty_windows(export, tmp_path, capsys):
    video = _video_whose_clock_jumps(tmp_path / "jump.mkv")
    args = ["predict", str(export), str(video), "--stream", "--json", "--window", "0.4", "--stride", "0.2"]
    assert main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    windows, summary = lines[:-1], lines[-1]["summary"]
    starts = [w["t0"] for w in windows]
    before, after = [t0 for t0 in starts if t0 < 2.0], [t0 for t0 in starts if t0 > JUMP_S]
    assert before == pytest.approx([0.2 * k for k in range(10)])  # the last ones end inside the gap
    assert after[0] <= JUMP_S + 2.0 < after[0] + 0.4  # the first window after holds the new frame
    assert np.diff(after) == pytest.approx([0.2] * (len(after) - 1), abs=1e-3)
    assert len(after) == 9 and summary["windows"] == len(starts) == 19  # nothing scored inside the gap
    assert summary["end"] == "end of input"


@pytest.mark.parametrize("flag,value", [("--stride", "1e-300"), ("--stride", "nan"), ("--window", "inf")])
def test_window_and_stride_must_be_finite_and_at_least_a_millisecond(export, flag, value, capsys):
    assert main(["predict", str(export), "any.mp4", "--stream", flag, value]) == 1
    assert capsys.readouterr().err.strip() == (
        f"tubelet: error: {flag} {float(value)} must be a finite number of seconds >= 0.001"
    )

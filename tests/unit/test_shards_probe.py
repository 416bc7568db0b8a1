"""Probing real encoded videos and broken files; re-encode sizing and frame-rate arithmetic."""

from __future__ import annotations

import pytest

from pretrain.data.generated.corpora import write_corrupt_video
from pretrain.data.generated.synthetic import moving_square_frames
from pretrain.data.shards.encode import ReencodeOptions, _repeats, output_size, reencode
from pretrain.data.video.probe import ProbeError, probe_video
from pretrain.data.video.write import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    return {
        suffix: write_video(root / f"clip{suffix}", moving_square_frames(20), fps=20)
        for suffix in (".avi", ".mp4")
    }


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("suffix,codec", [(".avi", "mpeg4"), (".mp4", "h264")])
def test_probe_reads_real_videos(videos, mode, suffix, codec):
    info = probe_video(str(videos[suffix]), mode)
    assert (info.codec, info.width, info.height, info.fps, info.num_frames, info.duration) == (
        codec,
        80,
        64,
        20.0,
        20,
        1.0,
    )
    assert probe_video(videos[suffix].read_bytes(), mode) == info


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize(
    "kind,reason",
    [
        ("zero-byte", "zero-byte file"),
        ("truncated", "truncated: "),
        ("not-video", "not a readable video container"),
    ],
)
def test_probe_rejects_broken_files_with_a_reason(videos, tmp_path, mode, kind, reason):
    broken = write_corrupt_video(tmp_path / "broken.avi", kind, good_video=videos[".avi"])
    with pytest.raises(ProbeError, match=f"^{reason}"):
        probe_video(broken.read_bytes(), mode)


def test_truncated_mp4_is_rejected(videos):
    data = videos[".mp4"].read_bytes()
    with pytest.raises(ProbeError):
        probe_video(data[: len(data) // 2])


@pytest.mark.parametrize(
    "size,short,expected",
    [
        ((320, 240), 160, (214, 160)),
        ((240, 320), 128, (128, 170)),
        ((320, 240), 480, (320, 240)),
        ((81, 65), None, (80, 64)),
    ],
)
def test_output_size_scales_the_short_side_to_even_sizes(size, short, expected):
    assert output_size(*size, short) == expected


@pytest.mark.parametrize(
    "in_fps,out_fps,frames,expected", [(25, 10, 64, 26), (30, 15, 30, 15), (20, 20, 17, 17), (10, 25, 10, 25)]
)
def test_frame_rate_conversion_keeps_the_duration(in_fps, out_fps, frames, expected):
    assert sum(_repeats(i, in_fps / out_fps) for i in range(frames)) == expected


def test_reencode_output_decodes_to_its_reported_info(videos):
    data, info = reencode(str(videos[".avi"]), ReencodeOptions(resize_short=32, fps=10, crf=30))
    assert (info.codec, info.width, info.height, info.fps, info.num_frames) == ("h264", 40, 32, 10.0, 10)
    assert probe_video(data) == info

"""Window decoding from bytes (real MPEG-4 AVI and H.264 MP4) and temporal sampling."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pretrain.data.augment import sampling
from pretrain.data.generated.synthetic import textured_pan_frames
from pretrain.data.video import decode
from pretrain.data.video.decode import DecodeError, count_decoded_frames, decode_frames, probe
from pretrain.data.video.write import write_video

NUM_FRAMES = 60


@pytest.fixture(scope="module", params=[".avi", ".mp4"])
def video_bytes(request, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("videos") / f"pan{request.param}"
    write_video(path, textured_pan_frames(NUM_FRAMES, size=(48, 64), seed=3), fps=25, gop=12)
    return path.read_bytes()


def full_decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_probe_reads_header(video_bytes):
    info = probe(video_bytes)
    assert (info.num_frames, info.width, info.height, info.fps) == (NUM_FRAMES, 64, 48, 25.0)


@pytest.mark.parametrize(
    "indices",
    [
        [0, 4, 8, 12],  # from the start, no seek
        [37, 41, 45, 49, 53],  # mid-video: seek to the keyframe before 37
        [50, 3, 50, 20],  # any order, repeats, two runs
        [1, 58, 59],  # far apart: a new seek for the second run
    ],
)
def test_window_equals_full_decode(video_bytes, indices):
    reference = full_decode(video_bytes)
    frames = decode_frames(video_bytes, indices)
    assert frames.shape == (len(indices), 48, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, reference[indices])


def test_indices_past_the_end_repeat_the_last_frame(video_bytes):
    reference = full_decode(video_bytes)
    frames = decode_frames(video_bytes, [NUM_FRAMES - 1, NUM_FRAMES + 5])
    np.testing.assert_array_equal(frames[1], reference[-1])


def test_resize_during_conversion(video_bytes):
    frames = decode_frames(video_bytes, [10, 20], size=(32, 24))
    reference = full_decode(video_bytes)[[10, 20]]
    assert frames.shape == (2, 24, 32, 3)
    # Same picture at half size: it correlates with the 2x2 block means of the full frames.
    pooled = reference.reshape(2, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.corrcoef(frames.ravel().astype(float), pooled.ravel())[0, 1] > 0.8
    assert abs(frames.mean() - reference.mean()) < 2


def test_floor_decodes_exactly_the_wanted_frames(video_bytes):
    assert count_decoded_frames(video_bytes, [5, 9, 9, 13, 40]) == 4


def test_threads_give_the_same_frames(video_bytes):
    np.testing.assert_array_equal(
        decode_frames(video_bytes, [30, 34], threads=2), decode_frames(video_bytes, [30, 34], threads=1)
    )


@pytest.mark.parametrize("data", [b"", b"this is not a video", b"RIFF" + b"\0" * 400])
def test_garbage_raises_decode_error(data):
    with pytest.raises(DecodeError):
        decode_frames(data, [0, 1])


def test_truncated_video_raises_or_returns_what_exists(video_bytes):
    cut = video_bytes[: len(video_bytes) // 3]
    try:
        frames = decode_frames(cut, [0, 50])
    except DecodeError:
        return
    assert frames.shape[0] == 2  # frames the cut video lacks repeat the last decoded one


def test_runs_split_on_large_gaps():
    gap = decode.RESEEK_GAP
    assert decode._runs([0, 4, 8, 8 + gap + 1, 8 + gap + 5]) == [[0, 4, 8], [8 + gap + 1, 8 + gap + 5]]


# ------------------------------------------------------------------ temporal sampling


def test_random_clip_fits_in_long_videos():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        clip = sampling.random_clip(100, num_frames=16, stride=4, rng=rng)
        assert len(clip) == 16 and np.all(np.diff(clip) == 4) and clip[-1] <= 99
        starts.add(int(clip[0]))
    assert min(starts) == 0 and max(starts) == 100 - 61  # every start reachable


def test_short_video_repeats_last_frame_like_videomae():
    clip = sampling.random_clip(10, num_frames=8, stride=4, rng=np.random.default_rng(0))
    assert clip.tolist() == [0, 4, 8, 9, 9, 9, 9, 9]


def test_uniform_clips_span_the_video():
    clips = sampling.uniform_clips(100, num_frames=8, stride=2, num_clips=5)
    assert clips.shape == (5, 8)
    assert clips[:, 0].tolist() == [0, 21, 42, 64, 85] and clips[-1, -1] == 99
    assert sampling.uniform_clips(100, 8, 2, 1)[0, 0] == 42  # one clip: centred


def test_planar_output_is_the_same_picture_channels_first(video_bytes):
    packed = decode_frames(video_bytes, [7, 30])  # (T, H, W, 3)
    planar = decode_frames(video_bytes, [7, 30], planar=True)  # (T, 3, H, W)
    np.testing.assert_array_equal(planar, packed.transpose(0, 3, 1, 2))
    small = decode_frames(video_bytes, [7], size=(32, 24), planar=True)
    assert small.shape == (1, 3, 24, 32) and small.flags["C_CONTIGUOUS"]

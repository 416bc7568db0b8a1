"""Rendering clip views from decoded frames: the YUV 4:2:0 route (OpenCV crop + resize in YUV,
RGB conversion of the output only) against the RGB route (swscale conversion, torch's
antialiased resize), mirroring, odd sizes, other pixel formats and pending views in batches."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from pretrain.data.augment import transforms
from pretrain.data.streams.batching import stack_videos
from pretrain.data.video import crop
from pretrain.data.video.decode import decode_frames, decode_window
from pretrain.data.video.frames import MAX_LINEAR_SHRINK, PendingView, view_of
from pretrain.data.video.write import write_video

HEIGHT, WIDTH = 96, 128


def smooth_frames(num_frames: int = 12) -> np.ndarray:
    """Slowly varying colour gradients (chroma without sharp edges), moving a little per frame."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frames = []
    for t in range(num_frames):
        red = 128 + 100 * np.sin((x + 2 * t) / 23.0)
        green = 128 + 90 * np.cos((y - t) / 17.0)
        blue = 128 + 80 * np.sin((x + y + 3 * t) / 31.0)
        frames.append(np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8))
    return np.stack(frames)  # (T, H, W, 3)


@pytest.fixture(scope="module")
def avi_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("frames") / "smooth.avi"
    return write_video(path, smooth_frames(), fps=25, bit_rate=4_000_000, gop=4).read_bytes()


@pytest.fixture(scope="module")
def yuv444_bytes(tmp_path_factory) -> bytes:
    """An H.264 4:4:4 video: a pixel format the YUV route does not take."""
    path = tmp_path_factory.mktemp("frames") / "smooth444.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.options = {"preset": "veryfast", "crf": "10"}
        for frame in smooth_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def rgb_route(data: bytes, indices: list[int], box, size: int) -> torch.Tensor:
    """swscale RGB frames, torch antialiased crop-resize: uint8 (T, S, S, 3)."""
    frames = crop.frames_to_tensor(decode_frames(data, indices))  # (T, 3, H, W)
    return crop.crop_resize(frames, box, size).permute(0, 2, 3, 1)


INDICES = [0, 3, 6, 9]


@pytest.mark.parametrize(
    "box, size",
    [
        ((8, 12, 80, 80), 96),  # upscale
        ((0, 0, 96, 96), 96),  # same size
        ((4, 20, 88, 100), 80),
    ],
)  # mild shrink (1.1-1.25x)
def test_yuv_route_matches_the_rgb_route(avi_bytes, box, size):
    frames = decode_window(avi_bytes, INDICES)
    assert frames.renders_from_yuv(box, (size, size))
    view = frames.render(box, (size, size))
    assert view.shape == (4, size, size, 3) and view.dtype == torch.uint8 and view.is_contiguous()
    difference = (view.int() - rgb_route(avi_bytes, INDICES, box, size).int()).abs().float()
    assert difference.mean() < 2.0  # both BT.601; rounding and chroma interpolation differ
    assert difference.quantile(0.99) <= 8


def test_mirrored_view_is_the_view_mirrored(avi_bytes):
    frames = decode_window(avi_bytes, INDICES)
    box, size = (8, 12, 80, 80), (64, 64)
    assert torch.equal(frames.render(box, size, flip=True), frames.render(box, size).flip(2))


def test_large_shrink_goes_through_the_antialiased_rgb_route(avi_bytes):
    frames = decode_window(avi_bytes, INDICES)
    box, size = (0, 0, 96, 96), 48  # 2x shrink
    assert MAX_LINEAR_SHRINK < 96 / 48 and not frames.renders_from_yuv(box, (size, size))
    assert torch.equal(frames.render(box, (size, size)), rgb_route(avi_bytes, INDICES, box, size))


def test_other_pixel_formats_go_through_the_rgb_route(yuv444_bytes):
    frames = decode_window(yuv444_bytes, INDICES)
    assert frames.frames[0].format.name == "yuv444p" and not frames.yuv420
    box = (8, 12, 80, 80)
    assert torch.equal(frames.render(box, (96, 96)), rgb_route(yuv444_bytes, INDICES, box, 96))


def test_odd_output_sizes_keep_the_geometry(avi_bytes):
    """A 4:2:0 render needs even sides: an odd width is rendered one wider and cut, flipped too."""
    frames = decode_window(avi_bytes, INDICES)
    frames.set_working_size((75, 56))  # boxes on a 75x56 frame: the whole frame resized to it
    whole = (0, 0, 56, 75)
    view = frames.render(whole, (56, 75))
    assert view.shape == (4, 56, 75, 3)
    reference = torch.nn.functional.interpolate(
        crop.frames_to_tensor(decode_frames(avi_bytes, INDICES)),
        size=(56, 75),
        mode="bilinear",
        antialias=True,
    )
    difference = (view.int() - reference.permute(0, 2, 3, 1).int()).abs().float()
    assert difference.mean() < 3.0
    assert torch.equal(frames.render(whole, (56, 75), flip=True), view.flip(2))


def test_rows_pick_frames_in_any_order(avi_bytes):
    frames = decode_window(avi_bytes, [9, 0, 9, 3])  # repeats allowed
    box, size = (8, 12, 80, 80), (64, 64)
    every = frames.render(box, size)
    assert torch.equal(every[0], every[2])
    assert torch.equal(frames.render(box, size, rows=[3, 1]), every[[3, 1]])


def test_working_size_scales_boxes_to_native_pixels(avi_bytes):
    """Boxes on a half-size working frame cut the same region as doubled boxes on the native one."""
    frames = decode_window(avi_bytes, INDICES)
    native = frames.render((8, 16, 80, 96), (80, 96))
    frames.set_working_size((WIDTH // 2, HEIGHT // 2))
    assert torch.equal(frames.render((4, 8, 40, 48), (80, 96)), native)


def test_pending_views_render_into_the_batch(avi_bytes):
    frames = decode_window(avi_bytes, INDICES)
    pending = view_of(frames, (8, 12, 80, 80), (64, 64), flip=True)
    assert isinstance(pending, PendingView) and pending.shape == (3, 4, 64, 64)
    eager = frames.render((0, 0, 96, 96), (64, 64)).permute(3, 0, 1, 2)  # 1.5x shrink: rendered now
    assert not isinstance(view_of(frames, (0, 0, 96, 96), (64, 64), flip=False), PendingView)
    batch = stack_videos([pending, eager])  # (B, C, T, H, W)
    assert batch.shape == (2, 3, 4, 64, 64) and batch.dtype == torch.uint8
    assert torch.equal(batch[0], pending.tensor()) and torch.equal(batch[1], eager)


def test_stacked_channels_last_clips_equal_a_plain_stack():
    clips = [torch.randint(0, 255, (4, 8, 8, 3), dtype=torch.uint8).permute(3, 0, 1, 2) for _ in range(3)]
    batch = stack_videos(clips)
    assert torch.equal(batch, torch.stack([c.contiguous() for c in clips]))
    assert batch.permute(0, 2, 3, 4, 1).is_contiguous()  # no transpose pass was made


def test_colours_come_out_right(tmp_path):
    """Flat colours survive encode → YUV render within a few levels (the BT.601 matrix is right)."""
    colours = [(200, 30, 40), (20, 180, 60), (30, 60, 210), (128, 128, 128)]
    frames = np.concatenate([np.full((2, HEIGHT, WIDTH, 3), c, dtype=np.uint8) for c in colours])
    data = write_video(tmp_path / "flat.avi", frames, fps=25, bit_rate=4_000_000).read_bytes()
    decoded = decode_window(data, [0, 2, 4, 6])
    view = decoded.render((16, 16, 64, 64), (64, 64))  # (4, 64, 64, 3)
    for index, colour in enumerate(colours):
        assert np.abs(view[index].float().mean((0, 1)).numpy() - np.array(colour)).max() < 4, colour


@pytest.mark.parametrize("flip", [False, True])
def test_yuv420_views_convert_to_the_rgb_view(avi_bytes, flip):
    """A view shipped as YUV 4:2:0 frames and converted with `yuv420_to_rgb` (on the device)
    equals the RGB view the loader would render, to rounding."""
    frames = decode_window(avi_bytes, INDICES)
    pending = PendingView(frames, (8, 12, 80, 80), (64, 64), flip)
    yuv = pending.render_yuv420_into(torch.empty((4, 96, 64), dtype=torch.uint8))  # (T, H*3/2, W)
    rgb = transforms.yuv420_to_rgb(yuv[None])[0]  # (3, T, H, W) float
    difference = (rgb - pending.tensor().float()).abs()
    assert (
        rgb.shape == (3, 4, 64, 64) and difference.mean() < 0.1 and (difference <= 1).float().mean() > 0.999
    )


def test_loader_workers_keep_large_buffers_in_the_heap():
    """Loader processes raise glibc's mmap/trim thresholds (batches reuse memory, no page faults)."""
    from pretrain.data.streams.allocator import keep_large_buffers
    from pretrain.data.streams.loader import StreamLoader, _init_worker

    assert keep_large_buffers() is True  # glibc (Linux): mallopt accepted both settings
    from pretrain.data.streams.loader import BatchStream

    assert StreamLoader(BatchStream(0, 1, 2, 0), num_workers=2).worker_init_fn is _init_worker

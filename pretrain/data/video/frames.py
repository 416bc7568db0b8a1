"""A clip's decoded frames, kept as the decoder made them, rendered to RGB crops on demand.

Decoding a small MPEG-4 clip costs about as much CPU as the pixel work that usually follows it:
convert every whole frame to RGB, crop, resize, mirror, transpose. `render` instead crops and
resizes the decoder's own YUV 4:2:0 planes (1.5 bytes a pixel; chroma at a quarter of the
pixels) with OpenCV and converts only the output pixels to RGB, so a 16-frame 224 px view of a
320x240 MPEG-4 clip costs about a third of the convert-then-resize route. That route stays for
views that shrink a lot (bilinear without antialiasing would alias; torch's antialiased resize is
used instead, as VideoMAE's PIL resize does) and for pixel formats other than 4:2:0.

Boxes are `(top, left, height, width)` in *working* pixels: the frame size the clip's crop boxes
are chosen on (the native size, or smaller when the caller shrinks large videos first, see
`pretrain.data.augment.transforms.conversion_size`). Views come out as uint8 `(T, H, W, 3)`; callers take
`.permute(3, 0, 1, 2)` for the `(C, T, H, W)` layout without copying.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from pretrain.data.stage_clock import CLOCK
from pretrain.data.video import crop
from pretrain.data.video.crop import Box

# A data-loader process works on one core; OpenCV's own thread pool would only add overhead.
cv2.setNumThreads(1)

YUV420_FORMATS = ("yuv420p", "yuvj420p")
MAX_LINEAR_SHRINK = 1.25
"""Views shrinking the source more than this go through torch's antialiased resize."""


class DecodedFrames:
    """Frames of one clip (in clip order, repeats allowed) and the size boxes refer to."""

    def __init__(self, frames: list[av.VideoFrame]) -> None:
        self.frames = frames
        self.native = (frames[0].width, frames[0].height)
        self.width, self.height = self.native
        self.yuv420 = frames[0].format.name in YUV420_FORMATS
        self._rgb: torch.Tensor | None = None
        self._planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def set_working_size(self, size: tuple[int, int] | None) -> None:
        """Choose boxes on frames of `size` = (width, height) (None: native) from now on."""
        self.width, self.height = size or self.native
        self._rgb = None

    def __len__(self) -> int:
        return len(self.frames)

    def render(
        self,
        box: Box,
        size: tuple[int, int],
        flip: bool = False,
        rows: list[int] | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames `rows` (default all) cropped to `box`, resized to `size` = (height, width) and
        mirrored left-right if `flip`: uint8 `(T, height, width, 3)`, written into `out` when
        given, else new (contiguous unless a side is odd)."""
        if self.renders_from_yuv(box, size):
            return self._render_yuv(self._to_native(box), size, flip, rows, out)
        view = self._render_rgb(box, size, flip, rows)
        return view if out is None else out.copy_(view)

    def renders_from_yuv(self, box: Box, size: tuple[int, int]) -> bool:
        """Whether this view is cut from the YUV planes (else from RGB frames, antialiased)."""
        native_box = self._to_native(box)
        return self.yuv420 and max(native_box[2] / size[0], native_box[3] / size[1]) <= MAX_LINEAR_SHRINK

    def _to_native(self, box: Box) -> tuple[float, float, float, float]:
        sy, sx = self.native[1] / self.height, self.native[0] / self.width
        top, left, height, width = box
        return top * sy, left * sx, height * sy, width * sx

    def _render_yuv(
        self,
        box: tuple[float, ...],
        size: tuple[int, int],
        flip: bool,
        rows: list[int] | None,
        into: torch.Tensor | None,
    ) -> torch.Tensor:
        rows = list(range(len(self.frames))) if rows is None else rows
        out_h, out_w = size
        # 4:2:0 output needs even sides: an odd side gets one more sample beyond the box, dropped after.
        even_h, even_w = out_h + out_h % 2, out_w + out_w % 2
        odd = (even_h, even_w) != (out_h, out_w)
        out = (
            into.numpy()
            if into is not None and not odd
            else np.empty((len(rows), even_h, even_w, 3), np.uint8)
        )
        # All frames' planes in one tall I420 image: one colour conversion (and mirror) per view.
        scratch = _I420(len(rows), even_h, even_w)
        with CLOCK.stage("crop_resize"):
            self._resize_planes(
                self._scaled_box(box, size, (even_h, even_w)),
                rows,
                [(scratch.y[r], scratch.u[r], scratch.v[r]) for r in range(len(rows))],
            )
            if flip:  # mirror the YUV planes: half the bytes of mirroring the RGB result
                scratch = scratch.mirrored()
        with CLOCK.stage("convert"):
            cv2.cvtColor(
                scratch.buffer, cv2.COLOR_YUV2RGB_I420, dst=out.reshape(len(rows) * even_h, even_w, 3)
            )
        if into is not None and not odd:
            return into
        first_col = even_w - out_w if flip else 0  # the extra column is on the left once mirrored
        view = torch.from_numpy(out)[:, :out_h, first_col : first_col + out_w]
        return view if into is None else into.copy_(view)

    def render_yuv420(self, box: Box, size: tuple[int, int], flip: bool, out: torch.Tensor) -> torch.Tensor:
        """The view as YUV 4:2:0 frames, into uint8 `out` `(T, H * 3 / 2, W)`: each frame's
        rows are Y (H rows), then U and V (H / 4 rows each, planes of H/2 x W/2), the layout
        `pretrain.data.augment.transforms.yuv420_to_rgb` reads. Only for views `renders_from_yuv`, even sides."""
        height, width = size
        frames = out.numpy()
        chroma = height * width // 4
        targets = [
            (
                frame[:height],
                frame[height:].reshape(-1)[:chroma].reshape(height // 2, width // 2),
                frame[height:].reshape(-1)[chroma:].reshape(height // 2, width // 2),
            )
            for frame in frames
        ]
        with CLOCK.stage("crop_resize"):
            self._resize_planes(
                self._scaled_box(self._to_native(box), size, size), list(range(len(frames))), targets
            )
            if flip:
                for planes in targets:
                    for plane in planes:
                        cv2.flip(plane, 1, dst=plane)  # in place
        return out

    def _scaled_box(
        self, box: tuple[float, ...], size: tuple[int, int], padded: tuple[int, int]
    ) -> tuple[int, ...]:
        """Integer native-pixel (top, bottom, left, right) of `box`, extended by what an output
        padded from `size` to `padded` covers; starts on even pixels (chroma pairs)."""
        top, left = _even(box[0]), _even(box[1])
        bottom = min(top + max(int(round(box[2] * padded[0] / size[0])), 2), self.native[1])
        right = min(left + max(int(round(box[3] * padded[1] / size[1])), 2), self.native[0])
        return top, bottom, left, right

    def _resize_planes(
        self, span: tuple[int, ...], rows: list[int], targets: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        """Resize the span of frame `rows[i]`'s Y, U, V planes into `targets[i]` (bilinear)."""
        top, bottom, left, right = span
        for frame_index, (y_out, u_out, v_out) in zip(rows, targets):
            y, u, v = self.planes(frame_index)
            cv2.resize(
                y[top:bottom, left:right], y_out.shape[::-1], dst=y_out, interpolation=cv2.INTER_LINEAR
            )
            for plane, target in ((u, u_out), (v, v_out)):
                chroma = plane[top // 2 : (bottom + 1) // 2, left // 2 : (right + 1) // 2]
                cv2.resize(chroma, target.shape[::-1], dst=target, interpolation=cv2.INTER_LINEAR)

    def planes(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero-copy `(H, W)` views of frame `index`'s Y, U and V planes."""
        if index not in self._planes:
            self._planes[index] = _planes(self.frames[index])
        return self._planes[index]

    def _render_rgb(
        self, box: Box, size: tuple[int, int], flip: bool, rows: list[int] | None
    ) -> torch.Tensor:
        frames = self.rgb() if rows is None else self.rgb()[rows]  # (T, 3, H, W), channels-last memory
        with CLOCK.stage("crop_resize"):
            clip = crop.crop_resize(frames, box, size)  # (T, 3, H, W)
            if flip:
                clip = crop.hflip(clip)
            return clip.permute(0, 2, 3, 1).contiguous()  # (T, H, W, 3); no copy when already channels-last

    def rgb(self) -> torch.Tensor:
        """All frames in RGB at the working size, uint8 `(T, 3, H, W)` in channels-last memory
        (converted once, resized inside swscale when the working size differs)."""
        if self._rgb is None:
            with CLOCK.stage("convert"):
                rgb = frames_to_rgb(self.frames, (self.width, self.height))
                self._rgb = crop.frames_to_tensor(rgb)
        return self._rgb


class PendingView:
    """A clip view not rendered yet: the batch renders it straight into its own memory
    (`batching.stack_videos`), saving a copy of every clip. `shape` is the `(C, T, H, W)` it
    will have."""

    def __init__(self, frames: DecodedFrames, box: Box, size: tuple[int, int], flip: bool) -> None:
        self.frames, self.box, self.size, self.flip = frames, box, size, flip
        self.shape = torch.Size((3, len(frames), *size))

    def render_into(self, out: torch.Tensor) -> torch.Tensor:
        """Render into uint8 `out` `(T, H, W, 3)`, contiguous."""
        return self.frames.render(self.box, self.size, self.flip, out=out)

    def render_yuv420_into(self, out: torch.Tensor) -> torch.Tensor:
        """Render as YUV 4:2:0 frames into uint8 `out` `(T, H * 3 / 2, W)`."""
        return self.frames.render_yuv420(self.box, self.size, self.flip, out=out)

    @property
    def yuv420_shippable(self) -> bool:
        return self.size[0] % 2 == 0 and self.size[1] % 2 == 0

    def tensor(self) -> torch.Tensor:
        """The rendered view, `(C, T, H, W)` (a permuted view of `(T, H, W, C)` memory)."""
        return self.frames.render(self.box, self.size, self.flip).permute(3, 0, 1, 2)


def view_of(frames: DecodedFrames, box: Box, size: tuple[int, int], flip: bool):
    """`(C, T, H, W)` view for a clip: pending when it is cut from the YUV planes (the decoded
    frames are about as small as the clip), rendered now otherwise (large sources: the decoded
    frames are much larger than the clip and should be freed)."""
    if frames.renders_from_yuv(box, size):
        return PendingView(frames, box, size, flip)
    return frames.render(box, size, flip).permute(3, 0, 1, 2)


class _I420:
    """`frames` images stacked into one contiguous I420 image (all Y planes, then all U, then
    all V): exactly the layout of one tall 4:2:0 picture, so OpenCV converts them in one call.
    `y[t]`, `u[t]`, `v[t]` are frame t's planes, for resizing into."""

    def __init__(self, frames: int, height: int, width: int) -> None:
        luma, chroma = height * width, height * width // 4
        self.buffer = np.empty((frames * height * 3 // 2, width), dtype=np.uint8)
        flat = self.buffer.reshape(-1)
        self.y = flat[: frames * luma].reshape(frames, height, width)
        self.u = flat[frames * luma : frames * (luma + chroma)].reshape(frames, height // 2, width // 2)
        self.v = flat[frames * (luma + chroma) :].reshape(frames, height // 2, width // 2)

    def mirrored(self) -> _I420:
        """A copy with every frame mirrored left-right."""
        frames, height, width = self.y.shape
        out = _I420(frames, height, width)
        for source, target in ((self.y, out.y), (self.u, out.u), (self.v, out.v)):
            tall = (frames * source.shape[1], source.shape[2])  # frames stacked: one call per plane
            cv2.flip(source.reshape(tall), 1, dst=target.reshape(tall))
        return out


def _even(value: float) -> int:
    return max(int(round(value)) // 2 * 2, 0)


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-copy `(H, W)` views of a 4:2:0 frame's Y, U and V planes."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        views.append(rows[: plane.height, : plane.width])
    return views[0], views[1], views[2]


def frames_to_rgb(frames: list[av.VideoFrame], size: tuple[int, int]) -> np.ndarray:
    """RGB `(T, H, W, 3)` at `size` = (width, height) with swscale: AREA when resizing,
    otherwise the fast path that only upsamples chroma (3x quicker than the exact one)."""
    reformatter = VideoReformatter()
    width, height = size
    native = (frames[0].width, frames[0].height) == size
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    converted: dict[int, np.ndarray] = {}
    for row, frame in enumerate(frames):
        key = id(frame)
        if key not in converted:  # repeated frames (short videos) convert once
            rgb = reformatter.reformat(
                frame,
                width=None if native else width,
                height=None if native else height,
                format="rgb24",
                interpolation="FAST_BILINEAR" if native else "AREA",
            )
            converted[key] = rgb.to_ndarray()
        out[row] = converted[key]
    return out

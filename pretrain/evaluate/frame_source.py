"""Frames of a live or long video, decoded once, in order: a file, a URL PyAV opens, or a file that
is still being written (`FollowedFile` waits at its end until it stops growing).

`FrameSource` yields `(time in seconds, uint8 RGB (S, S, 3))`: each frame scaled to short side S
during colour conversion and centre-cropped (what the model sees). It never raises for input that
goes bad or ends; it stops and says why in `end_reason`.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from pretrain.data.augment.transforms import short_side_size
from pretrain.errors import DataError

log = logging.getLogger(__name__)

POLL_S = 0.05


class FollowedFile(io.RawIOBase):
    """A local file read like `tail -f`: at its end, wait for more bytes; after `idle_s` seconds
    without growth, report the end (and keep reporting it: the demuxer asks more than once)."""

    def __init__(self, path: str | Path, idle_s: float) -> None:
        self.file = open(path, "rb")  # noqa: SIM115  (closed by close(), like the stream it backs)
        self.idle_s = idle_s
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        waited = 0.0
        while True:
            count = self.file.readinto(buffer)
            if count or self.ended:
                return count
            if waited >= self.idle_s:
                self.ended = True
                return 0
            time.sleep(POLL_S)
            waited += POLL_S

    def close(self) -> None:
        self.file.close()
        super().close()


def open_container(source: str, follow_s: float = 0.0) -> av.container.InputContainer:
    """PyAV container of `source` (path or URL); a local file is followed while it grows when `follow_s` > 0."""
    try:
        if follow_s > 0 and os.path.isfile(source):
            return av.open(io.BufferedReader(FollowedFile(source, follow_s)), mode="r")
        return av.open(source, mode="r", timeout=10)
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise DataError(f"{source}: cannot open as a video ({error})") from None


class FrameSource:
    def __init__(self, source: str, size: int, follow_s: float = 0.0) -> None:
        self.source = source
        self.size = size
        self.container = open_container(source, follow_s)
        if not self.container.streams.video:
            self.container.close()
            raise DataError(f"{source}: no video stream")
        self.stream = self.container.streams.video[0]
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 25)
        self.end_reason: str | None = None
        self.frames_decoded = 0

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        try:
            for frame in self.container.decode(self.stream):
                seconds = frame.time if frame.time is not None else self.frames_decoded / self.fps
                self.frames_decoded += 1
                yield float(seconds), self._model_view(frame)
            self.end_reason = "end of input"
        except (av.error.FFmpegError, OSError, ValueError) as error:
            self.end_reason = f"input stopped being readable ({error})"
        finally:
            self.container.close()

    def _model_view(self, frame: av.VideoFrame) -> np.ndarray:
        """Short side `size` (swscale) and centre crop -> uint8 (S, S, 3)."""
        width, height = short_side_size(frame.width, frame.height, self.size)
        rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()  # (h, w, 3)
        top, left = (height - self.size) // 2, (width - self.size) // 2
        return rgb[top : top + self.size, left : left + self.size]

"""The reconstruction PNG a user looks at: one row per frame of the clip, labelled on the left
("frame 3/8"), columns labelled original | masked | reconstruction, frames enlarged (nearest neighbour, so the patch grid stays visible) until they are
large enough to see, under a title naming the step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLUMNS = ("original", "masked", "reconstruction")
MIN_FRAME_SIDE = 160  # px on screen for the smaller side of one frame
GAP = 4  # px around and between tiles
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


@dataclass(frozen=True)
class Layout:
    """Where everything goes for `frames` time slots of `height` x `width` frames."""

    frames: int
    height: int
    width: int

    @property
    def scale(self) -> int:
        return max(1, math.ceil(MIN_FRAME_SIDE / max(1, min(self.height, self.width))))

    @property
    def font_size(self) -> int:
        return max(12, min(28, self.width * self.scale // 9))

    @property
    def header(self) -> int:
        return 3 * self.font_size + 2 * GAP  # the title line, then the column labels

    @property
    def margin(self) -> int:
        """Left of the first column: the row labels ("frame 8/8")."""
        return 5 * self.font_size

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole image."""
        return (
            self.margin + len(COLUMNS) * (self.width * self.scale + GAP) + GAP,
            self.header + self.frames * (self.height * self.scale + GAP) + GAP,
        )

    def box(self, slot: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of one enlarged frame."""
        left = self.margin + GAP + column * (self.width * self.scale + GAP)
        top = self.header + slot * (self.height * self.scale + GAP)
        return (left, top, left + self.width * self.scale, top + self.height * self.scale)


def reconstruction_image(panels: np.ndarray, title: str) -> Image.Image:
    """`panels` uint8 (T, C, H, 3W): per time slot the three frames side by side -> labelled RGB image."""
    frames, _, height, triple_width = panels.shape
    layout = Layout(frames, height, triple_width // len(COLUMNS))
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(layout.font_size)
    draw.text((GAP, GAP), title, fill=TEXT, font=font)
    for column, label in enumerate(COLUMNS):
        left, _, right, _ = layout.box(0, column)
        draw.text(
            ((left + right - draw.textlength(label, font=font)) / 2, GAP + 1.5 * layout.font_size),
            label,
            fill=TEXT,
            font=font,
        )
        for slot in range(frames):
            if column == 0:
                top, bottom = layout.box(slot, 0)[1::2]
                row = f"frame {slot + 1}/{frames}"
                draw.text((GAP, (top + bottom - layout.font_size) / 2), row, fill=TEXT, font=font)
            frame = panels[slot, :, :, column * layout.width : (column + 1) * layout.width]  # (C, H, W)
            tile = Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0)))
            box = layout.box(slot, column)
            canvas.paste(tile.resize((box[2] - box[0], box[3] - box[1]), Image.NEAREST), box[:2])
    return canvas


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, OSError):
        return ImageFont.load_default()

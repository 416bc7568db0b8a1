"""Keyframes of a video: the stream's I-frames (decoded alone: the decoder skips every other frame,
`skip_frame="NONKEY"`), one frame every S seconds, or the first frame of every shot; plus a
contact sheet (a grid of thumbnails) of any list of frames.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

log = logging.getLogger(__name__)

VideoSource = str | Path | bytes
MODES = ("iframes", "every", "scenes")


@dataclass
class Keyframe:
    source: str
    index: int
    """Frame index in presentation order (from the timestamp and the frame rate)."""
    time: float
    """Seconds from the first frame."""
    image: np.ndarray = field(repr=False)
    """RGB `(H, W, 3)` uint8."""
    pict_type: str = ""

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "image"}


def _open(source: VideoSource):
    return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))


def _clock(stream) -> tuple[int, float]:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return (stream.start_time or 0), float(rate) if rate else 0.0


def _keyframe(frame, stream, origin: int, fps: float, name: str) -> Keyframe:
    seconds = float((frame.pts - origin) * stream.time_base) if frame.pts is not None else 0.0
    return Keyframe(
        name,
        round(seconds * fps),
        round(seconds, 6),
        frame.to_ndarray(format="rgb24"),
        PictureType(int(frame.pict_type)).name,
    )


def iframes(source: VideoSource, name: str = "") -> list[Keyframe]:
    """Every keyframe of the first video stream, decoded without the frames between them."""
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        origin, fps = _clock(stream)
        return [_keyframe(frame, stream, origin, fps, name) for frame in container.decode(stream)]


def frames_at(source: VideoSource, indices: Sequence[int], name: str = "") -> list[Keyframe]:
    """The frames with these indices (seeking to the keyframe before each, decoding forward)."""
    found = []
    with _open(source) as container:
        stream = container.streams.video[0]
        origin, fps = _clock(stream)
        for wanted in sorted(set(indices)):
            container.seek(origin + int(wanted / fps / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                keyframe = _keyframe(frame, stream, origin, fps, name) if frame.pts is not None else None
                if keyframe is not None and keyframe.index >= wanted:
                    found.append(keyframe)
                    break
    return found


def every(source: VideoSource, seconds: float, name: str = "") -> list[Keyframe]:
    """One frame every `seconds`, from the first frame on."""
    with _open(source) as container:
        stream = container.streams.video[0]
        _, fps = _clock(stream)
        count = stream.frames or int((container.duration or 0) / 1e6 * fps)
    step = max(1, round(seconds * fps))
    return frames_at(source, range(0, max(count, 1), step), name)


def shots(source: str | Path, threshold: float | None = None, name: str = "") -> list[Keyframe]:
    """The first frame of every shot (hard cuts, see `pretrain.data.video.scenes`)."""
    from pretrain.data.video.scenes import DEFAULT_THRESHOLD, detect_cuts

    cuts = detect_cuts(str(source), threshold if threshold is not None else DEFAULT_THRESHOLD)
    return frames_at(source, [0, *cuts], name)


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str] = (),
    columns: int = 8,
    width: int = 160,
    rows_titles: Sequence[str] = (),
    caption_lines: int = 1,
):
    """A PIL image: thumbnails `width` wide in a grid, each captioned below (`caption_lines` lines
    of a caption split at newlines; each line cut to the thumbnail's width)."""
    from PIL import Image, ImageDraw

    if not images:
        raise ValueError("no frames for a contact sheet")
    height = max(1, round(width * images[0].shape[0] / images[0].shape[1]))
    caption_height, rows = 2 + 12 * caption_lines, -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * width, rows * (height + caption_height)), "black")
    draw = ImageDraw.Draw(sheet)
    characters = max(4, width // 6 - 1)  # PIL's default bitmap font is 6 px a character
    for position, image in enumerate(images):
        x, y = (position % columns) * width, (position // columns) * (height + caption_height)
        sheet.paste(Image.fromarray(image).resize((width, height)), (x, y))
        lines = captions[position].split("\n")[:caption_lines] if position < len(captions) else []
        for number, line in enumerate(lines):
            draw.text((x + 2, y + height + 1 + 12 * number), line[:characters], fill="white")
    return sheet


def extract(
    source: str | Path, mode: str = "iframes", seconds: float | None = None, threshold: float | None = None
) -> list[Keyframe]:
    name = str(source)
    if mode == "iframes":
        return iframes(source, name)
    if mode == "every":
        return every(source, float(seconds), name)
    if mode == "scenes":
        return shots(source, threshold, name)
    raise ValueError(f"keyframe mode {mode!r}: choose one of {MODES}")


def write_keyframes(
    videos: Sequence[str | Path],
    out: str | Path,
    mode: str = "iframes",
    seconds: float | None = None,
    threshold: float | None = None,
) -> tuple[list[dict], list[dict]]:
    """Images `out/<video stem>/<frame index>.jpg`, `out/keyframes.json`, `out/contact_sheet.png`;
    returns (keyframe records, errors). A video that cannot be read is listed under `errors` (also
    in keyframes.json); the others are written."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, thumbnails, captions, errors = [], [], [], []
    for number, video in enumerate(videos):
        try:
            found = extract(video, mode, seconds, threshold)
        except (av.FFmpegError, IndexError, ValueError) as error:  # IndexError: no video stream
            log.warning("%s: no keyframes: %s", video, error)
            errors.append({"source": str(video), "reason": f"not a readable video ({error})"})
            continue
        folder = out / f"{number:03d}-{Path(video).stem}"
        folder.mkdir(exist_ok=True)
        for keyframe in found:
            image_path = folder / f"{keyframe.index:07d}.jpg"
            Image.fromarray(keyframe.image).save(image_path, quality=90)
            records.append({**keyframe.record(), "image": image_path.relative_to(out).as_posix()})
            thumbnails.append(keyframe.image)
            captions.append(f"{Path(video).stem[:14]} {keyframe.time:.1f}s")
        log.info("%s: %d keyframes (%s)", video, sum(1 for r in records if r["source"] == str(video)), mode)
    (out / "keyframes.json").write_text(
        json.dumps({"mode": mode, "every_seconds": seconds, "keyframes": records, "errors": errors}, indent=1)
        + "\n"
    )
    if thumbnails:
        contact_sheet(thumbnails, captions).save(out / "contact_sheet.png")
    return records, errors


def iter_video_keyframes(data: bytes) -> Iterator[np.ndarray]:
    """RGB keyframes of in-memory video bytes (shard samples)."""
    for keyframe in iframes(data):
        yield keyframe.image

"""`tubelet shards inspect --contact-sheet FILE`: a captioned keyframe (key, class, start-end) of every
sample up to a stated cap, a row per class (or the whole corpus when unlabeled), to see what a
corpus holds before training on it."""

from __future__ import annotations

import logging
import tarfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np

from pretrain.data.shards.errors import ShardsError
from pretrain.data.shards.manifest import read_manifest
from pretrain.data.video.keyframes import contact_sheet, iframes

log = logging.getLogger(__name__)

MAX_THUMBNAILS = 64
"""Thumbnails on one sheet at most (`--max-samples`)."""
COLUMNS = 8


def _middle_keyframe(data: bytes) -> np.ndarray:
    frames = iframes(data)
    if not frames:
        raise ShardsError("no keyframe")
    return frames[len(frames) // 2].image


@dataclass(frozen=True)
class Thumbnail:
    key: str
    class_name: str
    start: float
    end: float
    image: np.ndarray

    @property
    def caption(self) -> str:
        """Three lines: key (its end, where keys differ), class, start-end in seconds."""
        key = self.key if len(self.key) <= 20 else "…" + self.key[-19:]
        return f"{key}\n{self.class_name}\n{self.start:.1f}-{self.end:.1f} s"


def pick_samples(path_or_url: str, per_class: int | None, cap: int) -> tuple[dict[str, list[Thumbnail]], int]:
    """(class (or "(unlabeled)") -> its thumbnails by key; samples in the corpus): the first in shard
    order, at most `per_class` a class (None: all) and `cap` in all."""
    import json

    manifest = read_manifest(path_or_url)
    fs, root = fsspec.core.url_to_fs(manifest.location)
    picked: dict[str, list[Thumbnail]] = defaultdict(list)
    for shard in manifest.shards:
        with (
            fs.open(f"{root.rstrip('/')}/{shard.name}", "rb") as handle,
            tarfile.open(fileobj=handle, mode="r:") as tar,
        ):
            members: dict[str, dict] = defaultdict(dict)
            for member in tar:
                key, _, ext = member.name.partition(".")
                members[key][ext] = tar.extractfile(member).read()
                if "json" not in members[key] or len(members[key]) < 2:
                    continue
                meta = json.loads(members[key].pop("json"))
                video = members.pop(key).get(meta.get("ext"))
                group = picked[meta.get("class", "(unlabeled)")]
                full = per_class is not None and len(group) >= per_class
                if video is None or full or sum(map(len, picked.values())) >= cap:
                    continue
                try:
                    image = _middle_keyframe(video)
                except Exception as error:  # a damaged sample is left out of the sheet, not fatal
                    log.warning("%s: no keyframe for the contact sheet (%s)", key, error)
                    continue
                start = float(meta.get("start", 0.0))
                end = float(meta.get("end", start + float(meta.get("duration") or 0.0)))
                group.append(Thumbnail(key, meta.get("class", "(unlabeled)"), start, end, image))
        if sum(map(len, picked.values())) >= cap:
            break
    ordered = {name: sorted(group, key=lambda t: t.key) for name, group in sorted(picked.items()) if group}
    return ordered, manifest.num_samples  # keys sort spans by parent, then start


@dataclass(frozen=True)
class SheetSummary:
    shown: int
    samples: int
    cap: int

    def line(self, output: str | Path) -> str:
        """`contact sheet: 14 of 14 samples (at most 64) -> sheet.png`."""
        return f"contact sheet: {self.shown} of {self.samples} samples (at most {self.cap}) -> {output}"


def write_contact_sheet(
    path_or_url: str,
    output: str | Path,
    per_class: int | None = None,
    cap: int = MAX_THUMBNAILS,
    width: int = 128,
) -> SheetSummary:
    """One captioned thumbnail (key, class, start-end) per sample, up to `cap` (and `per_class` a
    class); each class starts a row, rows `COLUMNS` wide."""
    for flag, value in (("--per-class", per_class), ("--max-samples", cap)):
        if value is not None and value < 1:
            raise ShardsError(f"{flag} {value} must be >= 1")
    picked, total = pick_samples(path_or_url, per_class, cap)
    if not picked:
        raise ShardsError(f"{path_or_url}: no sample decoded for a contact sheet")
    columns = min(COLUMNS, max(len(group) for group in picked.values()))
    first = next(iter(picked.values()))[0].image
    images, captions = [], []
    for group in picked.values():
        padding = -len(group) % columns  # the next class starts a new row
        images += [_fit(thumb.image, first.shape) for thumb in group] + [np.zeros_like(first)] * padding
        captions += [thumb.caption for thumb in group] + [""] * padding
    contact_sheet(images, captions, columns=columns, width=width, caption_lines=3).save(output)
    return SheetSummary(sum(map(len, picked.values())), total, cap)


def _fit(image: np.ndarray, shape: tuple) -> np.ndarray:
    from PIL import Image

    if image.shape == shape:
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0])))

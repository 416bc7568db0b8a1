"""`tubelet shards inspect --contact-sheet FILE`: one keyframe per sample for a few samples of every
class (or of the whole corpus when unlabeled), to see what a corpus holds before training on it."""

from __future__ import annotations

import logging
import tarfile
from collections import defaultdict
from pathlib import Path

import fsspec
import numpy as np

from pretrain.data.shards.errors import ShardsError
from pretrain.data.shards.manifest import read_manifest
from pretrain.data.video.keyframes import contact_sheet, iframes

log = logging.getLogger(__name__)


def _middle_keyframe(data: bytes) -> np.ndarray:
    frames = iframes(data)
    if not frames:
        raise ShardsError("no keyframe")
    return frames[len(frames) // 2].image


def pick_samples(path_or_url: str, per_class: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """class (or "(unlabeled)") -> [(key, keyframe)], the first `per_class` samples in shard order."""
    import json

    manifest = read_manifest(path_or_url)
    fs, root = fsspec.core.url_to_fs(manifest.location)
    picked: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    wanted = max(1, len(manifest.classes)) * per_class
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
                if video is not None and len(group) < per_class:
                    try:
                        group.append((key, _middle_keyframe(video)))
                    except Exception as error:  # a damaged sample is left out of the sheet, not fatal
                        log.warning("%s: no keyframe for the contact sheet (%s)", key, error)
        if sum(len(group) for group in picked.values()) >= wanted:
            break
    return dict(sorted(picked.items()))


def write_contact_sheet(path_or_url: str, output: str | Path, per_class: int = 4, width: int = 128) -> int:
    """A grid with one row per class (`per_class` keyframes each); returns the number of thumbnails."""
    picked = pick_samples(path_or_url, per_class)
    images, captions = [], []
    for class_name, samples in picked.items():
        for column in range(per_class):
            if column < len(samples):
                images.append(samples[column][1])
                captions.append(f"{class_name}" if column == 0 else "")
            else:
                images.append(np.zeros_like(samples[0][1]))
                captions.append("")
    if not images:
        raise ShardsError(f"{path_or_url}: no sample decoded for a contact sheet")
    same = [np.asarray(_fit(image, images[0].shape)) for image in images]
    contact_sheet(same, captions, columns=per_class, width=width).save(output)
    return sum(len(samples) for samples in picked.values())


def _fit(image: np.ndarray, shape: tuple) -> np.ndarray:
    from PIL import Image

    if image.shape == shape:
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0])))

"""`tubelet shards inspect`: what a shard directory holds, read from the samples' own json."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec

from pretrain.data.shards.manifest import Manifest, read_manifest


@dataclass
class Inspection:
    location: str
    dataset: str
    samples: int = 0
    shards: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    classes: dict = field(default_factory=dict)
    splits: dict = field(default_factory=dict)
    """split id -> subset -> count (folder corpora: {"all": {"all": n}})."""
    split_classes: dict = field(default_factory=dict)
    """split id -> subset -> class -> count."""
    resolutions: dict = field(default_factory=dict)
    fps: dict = field(default_factory=dict)
    codecs: dict = field(default_factory=dict)
    containers: dict = field(default_factory=dict)
    skipped_videos: int = 0
    failures: list = field(default_factory=list)
    """One line per shard that could not be read (missing, truncated, corrupt header)."""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def iter_sample_json(manifest: Manifest, shard_name: str) -> Iterator[tuple[str, dict]]:
    """(member name, parsed json) of each sample in a shard, seeking past the video bytes."""
    fs, root = fsspec.core.url_to_fs(manifest.location)
    with fs.open(f"{root.rstrip('/')}/{shard_name}", "rb") as handle:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    yield member.name, json.loads(tar.extractfile(member).read().decode("utf-8"))


def inspect_shards(path_or_url: str) -> Inspection:
    """Counts per split and class, total duration, resolution/fps/codec distributions."""
    manifest = read_manifest(path_or_url)
    report = Inspection(
        manifest.location,
        manifest.dataset,
        shards=len(manifest.shards),
        bytes=sum(s.bytes for s in manifest.shards),
        skipped_videos=manifest.totals.get("skipped_videos", 0),
    )
    counters = {name: Counter() for name in ("classes", "resolutions", "fps", "codecs", "containers")}
    splits, split_classes = Counter(), Counter()
    for shard in manifest.shards:
        try:  # a shard counts whole or not at all
            metas = [meta for _, meta in iter_sample_json(manifest, shard.name)]
        except FileNotFoundError:
            report.failures.append(f"{shard.name}: missing")
            continue
        except (tarfile.TarError, OSError, ValueError) as error:
            report.failures.append(f"{shard.name}: unreadable tar ({error})")
            continue
        for meta in metas:
            report.samples += 1
            report.duration_s += meta["duration"]
            counters["classes"][meta.get("class", "(unlabeled)")] += 1
            counters["resolutions"][f"{meta['width']}x{meta['height']}"] += 1
            counters["fps"][f"{meta['fps']:g}"] += 1
            counters["codecs"][meta.get("codec", "?")] += 1
            counters["containers"][meta.get("ext", "?")] += 1
            memberships = meta.get("splits") or {"all": "all"}
            for split_id, subset in memberships.items():
                splits[(split_id, subset)] += 1
                split_classes[(split_id, subset, meta.get("class", "(unlabeled)"))] += 1
    for name, counter in counters.items():
        setattr(report, name, dict(counter.most_common()))
    for (split_id, subset), count in sorted(splits.items()):
        report.splits.setdefault(split_id, {})[subset] = count
    for (split_id, subset, class_name), count in sorted(split_classes.items()):
        report.split_classes.setdefault(split_id, {}).setdefault(subset, {})[class_name] = count
    report.duration_s = round(report.duration_s, 3)
    return report

"""Spans: a part of a source video that becomes its own shard sample (a fixed-length segment, a
shot, or an annotated span of an untrimmed video).

Keys: `key_for_path(parent)` + `_s<start ms>-<end ms>`. `key_for_path` only ever writes '_' as
the start of a two-hex-digit escape, so `_s` cannot occur in a whole-video key and a span key
never collides with a video key, nor with another span of a different parent or time range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pretrain.data.shards.keys import key_for_path

SPAN_KEY = re.compile(r"^(?P<parent>.*)_s(?P<start>\d{9})-(?P<end>\d{9})$")
TAILS = ("merge", "drop")


@dataclass(frozen=True)
class Span:
    """Seconds from the start of the parent video; `exact` cuts re-encode, others copy packets
    from the keyframe at `start` up to the keyframe at `end` (planned keyframe-aligned)."""

    start: float
    end: float
    index: int
    """Segment (or shot) number within the parent, or the annotation row."""
    exact: bool = False
    kind: str = "segment"
    """"segment", "scene" or "annotation"."""
    shot: tuple[float, float] | None = None
    """Stream copy with --scenes: the whole shot (seconds) this keyframe-aligned span lies inside;
    the shot's frames before its first keyframe and after its last one are dropped."""

    @property
    def duration(self) -> float:
        return self.end - self.start


def milliseconds(seconds: float) -> int:
    return int(round(seconds * 1000))


def span_key(parent: str, span: Span) -> str:
    """`"long/film.mp4"`, 12.0-24.5 s -> `"long_2ffilm_2emp4_s000012000-000024500"`."""
    return f"{key_for_path(parent)}_s{milliseconds(span.start):09d}-{milliseconds(span.end):09d}"


def sample_key(meta: dict) -> str:
    """The key a sample with this `.json` must have (whole videos and spans alike)."""
    if "parent" in meta and "start" in meta and "end" in meta:
        return span_key(meta["parent"], Span(float(meta["start"]), float(meta["end"]), 0))
    return key_for_path(meta.get("path", ""))


def span_fields(span: Span | None, parent: str) -> dict:
    """Extra `.json` fields of a span sample (none for whole videos)."""
    if span is None:
        return {}
    return {
        "parent": parent,
        "start": round(span.start, 6),
        "end": round(span.end, 6),
        "segment": span.index,
        "cut": "exact" if span.exact else ("keyframe_in_shot" if span.shot else "keyframe"),
        "span_kind": span.kind,
        **({"shot": [round(span.shot[0], 6), round(span.shot[1], 6)]} if span.shot else {}),
    }

"""Segments at build time: each long video becomes samples of about `seconds` (and/or one per shot).

Planning happens before the shards are planned, so segments are ordinary entries (a `VideoEntry`
with a `Span`): they are shuffled across shards, fingerprinted, resumed and built in parallel
exactly like whole videos, and the stream reads them as videos.

For each video a timeline scan demuxes every packet (no decoding) for the frame count and the
keyframe positions; `--scenes` also decodes low-resolution frames for shot changes. Cut points are
then frame indices:

- fixed length: every `round(seconds * fps)` frames (inside each shot with `--scenes`);
- stream copy (no `--reencode`): every cut point moves to the nearest keyframe (ties: the earlier
  one), because a copied segment must start with a keyframe. A segment is then as long as the
  keyframe grid allows: with 2 s keyframe intervals, 10 s segments are 9-11 s;
- exact (`--reencode`): the cut points stay where they are (the segment is re-encoded);
- stream copy with `--scenes`: no segment crosses a shot change. A shot's segments run from its
  first keyframe at or after the cut to its last keyframe at or before the next cut; the frames
  outside are dropped, never copied into a neighbour shot's segment (json: `cut`
  "keyframe_in_shot", `shot` [start, end] of the whole shot). A shot without a keyframe inside it,
  or shorter than the minimum once trimmed, is dropped.

Stream copy assumes closed GOPs (x264's default, MPEG-4 Part 2): in an open-GOP source the
B-frames that follow a keyframe in decode order but reference the GOP before it cannot be decoded
in the new segment and are lost at each boundary; `--reencode` avoids that.

Pieces shorter than `min_seconds` (the tail, short shots, pieces squeezed by keyframe snapping)
are merged into the previous piece (`tail="merge"`, the default; the first piece merges forward)
or dropped (`tail="drop"`, counted in the log). A part of a video that cannot be demuxed ends its
timeline there: the readable part is segmented and the rest is recorded as one skipped input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import av

from pretrain.data.shards.errors import ShardsError
from pretrain.data.shards.keys import key_for_path
from pretrain.data.shards.listing import Listing, VideoEntry
from pretrain.data.shards.spans import TAILS, Span
from pretrain.data.video.probe import ProbeError, stream_rate

log = logging.getLogger(__name__)

CACHE_DIR = "_build/segments"


@dataclass(frozen=True)
class SegmentOptions:
    seconds: float | None = None
    """Target segment length; None with `scenes` cuts at shot changes only."""
    min_seconds: float | None = None
    """Shorter pieces are merged or dropped (default: half of `seconds`, or 1 s for shots only)."""
    tail: str = "merge"
    """"merge": a short piece joins its neighbour; "drop": it is left out."""
    scenes: bool = False
    """Cut at shot changes (see `pretrain.data.video.scenes`)."""
    exact: bool = False
    """Re-encode, cutting at the exact frame; False copies packets between keyframes."""
    scene_threshold: float = 8.0

    def __post_init__(self) -> None:
        if self.seconds is None and not self.scenes:
            raise ShardsError("segments need --segment-seconds and/or --scenes")
        if self.seconds is not None and self.seconds <= 0:
            raise ShardsError(f"--segment-seconds={self.seconds} must be > 0")
        if self.min_seconds is not None and self.min_seconds < 0:
            raise ShardsError(f"--min-segment-seconds={self.min_seconds} must be >= 0")
        if self.tail not in TAILS:
            raise ShardsError(f"--tail={self.tail!r}: choose one of {', '.join(TAILS)}")

    @property
    def minimum(self) -> float:
        if self.min_seconds is not None:
            return self.min_seconds
        return self.seconds / 2 if self.seconds else 1.0


@dataclass(frozen=True)
class Timeline:
    """What the scan found: frames in presentation order, keyframe frame indices."""

    fps: float
    num_frames: int
    keyframes: tuple[int, ...]
    error: str | None = None
    """Why the scan stopped before the end (the rest of the video is unreadable)."""
    cuts: tuple[int, ...] = ()
    """First frame of every shot after the first (with --scenes)."""


@dataclass
class SegmentedVideo:
    entry: VideoEntry
    spans: list[Span] = field(default_factory=list)
    dropped: int = 0
    """Pieces shorter than the minimum that were merged or dropped (see `tail`)."""
    error: str | None = None


def scan_timeline(file: str) -> Timeline:
    """Demux every packet: frame count, fps and keyframe indices; ProbeError if nothing is readable."""
    try:
        container = av.open(file)
    except (av.FFmpegError, ValueError) as error:
        raise ProbeError(f"not a readable video container ({error})") from None
    with container:
        if not container.streams.video:
            raise ProbeError("no video stream")
        stream = container.streams.video[0]
        fps = stream_rate(stream)
        time_base = stream.time_base  # read while open: a closed container's stream may answer None
        if fps <= 0 or time_base is None:
            raise ProbeError("no frame rate or time base in the container")
        stamps, keys, error = [], [], None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                stamps.append(packet.pts if packet.pts is not None else packet.dts)
                if packet.is_keyframe:
                    keys.append(stamps[-1])
        except av.FFmpegError as failure:
            error = f"demux error after {len(stamps)} frames ({failure})"
    if not stamps or not keys:
        raise ProbeError(error or "no frames")
    origin = min(s for s in stamps if s is not None)
    keyframes = sorted({round(float((k - origin) * time_base) * fps) for k in keys if k is not None})
    return Timeline(fps, len(stamps), tuple(keyframes), error)


def nearest_keyframe(point: int, keyframes: Sequence[int]) -> int:
    """The keyframe index closest to `point` (the earlier one on a tie)."""
    return min(keyframes, key=lambda k: (abs(k - point), k))


def cut_points(timeline: Timeline, options: SegmentOptions) -> list[int]:
    """Interior cut frame indices, sorted, unique."""
    count = timeline.num_frames
    shots = [0, *timeline.cuts, count]
    points = set(timeline.cuts)
    if options.seconds:
        step = max(1, round(options.seconds * timeline.fps))
        for begin, end in zip(shots[:-1], shots[1:]):
            points.update(range(begin + step, end, step))
    if not options.exact:
        points = {nearest_keyframe(p, timeline.keyframes) for p in points}
    return sorted(p for p in points if 0 < p < count)


def pieces(timeline: Timeline, options: SegmentOptions) -> tuple[list[tuple[int, int]], int]:
    """(frame ranges [begin, end) after the short-piece rule, number of short pieces merged or dropped)."""
    points = cut_points(timeline, options)
    ranges = list(zip([0, *points], [*points, timeline.num_frames]))
    return short_piece_rule(ranges, options.minimum * timeline.fps, options.tail)


def shot_pieces(
    timeline: Timeline, options: SegmentOptions
) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
    """Stream copy with --scenes: (shot, its pieces); no piece crosses a shot change. A piece must
    start on a keyframe, so each shot keeps the part from its first keyframe at or after the cut to
    its last keyframe at or before the next cut (the video's end for the last shot): the frames
    outside are dropped rather than copied into a neighbour shot's segment. Long shots are cut at
    the keyframes nearest every `seconds`; short pieces merge within their shot; a shot too short
    (or without a keyframe) is dropped."""
    count, keys = timeline.num_frames, timeline.keyframes
    bounds = [0, *timeline.cuts, count]
    step = max(1, round(options.seconds * timeline.fps)) if options.seconds else None
    shortest = options.minimum * timeline.fps
    result = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        begin = next((k for k in keys if k >= start), count)
        end = stop if stop == count else max((k for k in keys if k <= stop), default=0)
        inner = {nearest_keyframe(p, keys) for p in range(begin + step, end, step)} if step else set()
        points = sorted(p for p in inner if begin < p < end)
        ranges = list(zip([begin, *points], [*points, end])) if end > begin else []
        kept, _ = short_piece_rule(ranges, shortest, options.tail)
        result.append(((start, stop), [r for r in kept if r[1] - r[0] >= shortest - 1e-9]))
    return result


def short_piece_rule(
    ranges: list[tuple[int, int]], shortest: float, tail: str
) -> tuple[list[tuple[int, int]], int]:
    """Pieces shorter than `shortest` frames merged into a neighbour or dropped; (kept, how many)."""
    if len(ranges) < 2 or shortest <= 0:
        return ranges, 0
    if tail == "drop":
        kept = [r for r in ranges if r[1] - r[0] >= shortest - 1e-9]
        return kept, len(ranges) - len(kept)
    merged: list[list[int]] = []
    for begin, end in ranges:
        if merged and (end - begin < shortest - 1e-9 or merged[-1][1] - merged[-1][0] < shortest - 1e-9):
            merged[-1][1] = end  # a short piece joins the previous one (a short first piece takes the next)
        else:
            merged.append([begin, end])
    return [tuple(r) for r in merged], len(ranges) - len(merged)


def segment_video(entry: VideoEntry, options: SegmentOptions) -> SegmentedVideo:
    """The spans of one video (the unit of parallel planning work)."""
    try:
        timeline = scan_timeline(entry.file)
        if options.scenes:
            from pretrain.data.video.scenes import detect_cuts

            timeline = replace(
                timeline, cuts=tuple(detect_cuts(entry.file, options.scene_threshold, timeline.num_frames))
            )
    except ProbeError as error:
        return SegmentedVideo(entry, error=str(error))
    seconds = lambda frame: round(frame / timeline.fps, 6)  # noqa: E731
    if options.scenes and not options.exact:
        shots = shot_pieces(timeline, options)
        spans = [
            Span(seconds(b), seconds(e), 0, False, "scene", (seconds(shot[0]), seconds(shot[1])))
            for shot, ranges in shots
            for b, e in ranges
        ]
        spans = [replace(span, index=i) for i, span in enumerate(spans)]
        dropped = sum(1 for _, ranges in shots if not ranges)
        return SegmentedVideo(entry, spans, dropped, timeline.error)
    ranges, dropped = pieces(timeline, options)
    kind = "scene" if options.scenes else "segment"
    spans = [Span(seconds(b), seconds(e), i, options.exact, kind) for i, (b, e) in enumerate(ranges)]
    return SegmentedVideo(entry, spans, dropped, timeline.error)


def _span_entry(entry: VideoEntry, span: Span, total: float) -> VideoEntry:
    share = span.duration / total if total > 0 else 1.0
    return replace(entry, size=max(1, int(entry.size * share)), span=span)


def _cache_name(entry: VideoEntry) -> str:
    return f"{CACHE_DIR}/{key_for_path(entry.path)}.json"


def _identity(entry: VideoEntry, options: SegmentOptions) -> list:
    try:
        mtime = os.stat(entry.file).st_mtime_ns
    except OSError:
        mtime = -1
    return [entry.path, entry.size, mtime, asdict(options)]


def _cached(entry: VideoEntry, options: SegmentOptions, cache) -> SegmentedVideo | None:
    record = cache.read_json(_cache_name(entry)) if cache is not None else None
    if not isinstance(record, dict) or record.get("identity") != _identity(entry, options):
        return None
    return SegmentedVideo(
        entry, [_span_from_json(span) for span in record["spans"]], record["dropped"], record["error"]
    )


def _span_from_json(fields: dict) -> Span:
    shot = fields.get("shot")
    return Span(**{**fields, "shot": tuple(shot) if shot else None})


def _store(result: SegmentedVideo, options: SegmentOptions, cache) -> None:
    if cache is not None:
        cache.write_json(
            _cache_name(result.entry),
            {
                "identity": _identity(result.entry, options),
                "dropped": result.dropped,
                "error": result.error,
                "spans": [asdict(s) for s in result.spans],
            },
        )


def segment_all(
    entries: list[VideoEntry], options: SegmentOptions, workers: int, cache
) -> list[SegmentedVideo]:
    """Every video's spans: from the cache of an earlier run of the same build (a resumed
    `--scenes` build does not decode everything again), else scanned in `workers` processes."""
    from pretrain.data.shards.local_pool import run_in_processes

    if cache is not None:
        cache.makedirs(CACHE_DIR)
        cache.remove_partials(CACHE_DIR)
    known = {entry.path: found for entry in entries if (found := _cached(entry, options, cache)) is not None}
    todo = [entry for entry in entries if entry.path not in known]
    if workers > 1:
        fresh = list(run_in_processes(segment_video, todo, options, workers))
    else:
        fresh = [segment_video(entry, options) for entry in todo]
    for result in fresh:
        _store(result, options, cache)
    if known:
        log.info("%d of %d videos' segments from the previous run's scan", len(known), len(entries))
    return sorted([*known.values(), *fresh], key=lambda r: r.entry.path)


def segment_listing(
    listing: Listing, options: SegmentOptions, workers: int = 1, cache=None
) -> tuple[Listing, list[dict]]:
    """The listing with every video replaced by its segments; error rows for unreadable (parts of)
    videos. Videos are scanned in `workers` local processes; `cache` (the output's ShardStore)
    keeps each video's scan for a resumed build."""
    if any(entry.span for entry in listing.entries):
        raise ShardsError("annotated spans are samples already; --segment-seconds/--scenes cut whole videos")
    results = segment_all(listing.entries, options, workers, cache)
    entries, rows, dropped = [], [], 0
    for result in results:
        total = result.spans[-1].end if result.spans else 0.0
        entries.extend(_span_entry(result.entry, span, total) for span in result.spans)
        dropped += result.dropped
        if result.error:
            start = total if result.spans else 0.0
            rows.append(
                {
                    "kind": "video" if not result.spans else "segment",
                    "path": result.entry.path,
                    "file": result.entry.file,
                    "start": start,
                    "reason": result.error,
                }
            )
            log.warning(
                "%s: %s%s",
                result.entry.file,
                result.error,
                f" (kept the first {total:.1f} s)" if result.spans else "; skipped",
            )
    cut = (
        "exact cuts (re-encoded)"
        if options.exact
        else "stream copy: every shot from its first keyframe to its last, frames outside dropped"
        if options.scenes
        else "stream copy: boundaries moved to the nearest keyframe"
    )
    log.info(
        "%d videos -> %d segments (%s); %d piece(s) shorter than %.2f s %s",
        len(results),
        len(entries),
        cut,
        dropped,
        options.minimum,
        "dropped" if options.tail == "drop" else "merged into a neighbour",
    )
    if not entries:
        raise ShardsError("no readable segments in any video")
    return replace(listing, entries=entries), rows

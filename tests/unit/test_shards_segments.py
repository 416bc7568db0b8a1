"""Segments at build time over a generated 3-minute video with known shots: stream-copy and exact
cuts, the short-tail rule, a damaged part, shot changes, the stream reading segments as videos."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from pretrain.cli import main
from pretrain.data.generated.long_video import write_scene_video
from pretrain.data.shards import BuildOptions, build_shards, read_manifest, verify_shards
from pretrain.data.shards.spans import sample_key
from pretrain.data.video.scenes import detect_cuts

FPS, GOP = 8, 16  # a keyframe every 2 s
# 3 min 2.5 s: 1460 frames in 25 shots (a 20-frame, 2.5 s tail after 18 segments of 10 s).
SHOTS = [40, 64, 23, 100, 80, 57] * 4 + [4]


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    video = write_scene_video(root / "raw" / "films" / "film.mp4", SHOTS, fps=FPS, gop=GOP)
    return root, video


def decoded(data) -> np.ndarray:
    """Every frame `(T, H, W, 3)` of a file path or bytes."""
    import io

    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def samples(out: Path) -> list[dict]:
    """Every sample (json + video bytes) in (parent, start) order."""
    manifest = read_manifest(str(out))
    rows = []
    for sample in wds.WebDataset(manifest.shard_urls(), shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        rows.append({"key": sample["__key__"], "meta": meta, "video": sample[meta["ext"]]})
    return sorted(rows, key=lambda r: (r["meta"]["parent"], r["meta"]["start"]))


def test_stream_copy_segments_cover_the_source_frame_for_frame(film, tmp_path):
    root, video = film
    summary = build_shards(
        "folder", str(root / "raw"), str(tmp_path), BuildOptions(shard_size_mb=0.02, segment_seconds=7)
    )
    rows = samples(tmp_path)
    starts = [round(r["meta"]["start"] * FPS) for r in rows]
    # Boundaries: the nominal 7 s grid (56 frames) moved to the nearest keyframe (every 16 frames;
    # 56 * odd sits halfway and goes to the earlier one); the last cut, 1456, would leave a 4-frame
    # tail (< 3.5 s), merged into the segment before it.
    assert starts == [
        0,
        48,
        112,
        160,
        224,
        272,
        336,
        384,
        448,
        496,
        560,
        608,
        672,
        720,
        784,
        832,
        896,
        944,
        1008,
        1056,
        1120,
        1168,
        1232,
        1280,
        1344,
        1392,
    ]
    assert all(abs(s - 56 * i) <= GOP // 2 for i, s in enumerate(starts))
    frames = [decoded(r["video"]) for r in rows]
    assert np.array_equal(np.concatenate(frames), decoded(video.path))  # no frame lost or repeated
    for row, clip, end in zip(rows, frames, starts[1:] + [video.num_frames]):
        meta = row["meta"]
        assert meta["parent"] == meta["path"] == "films/film.mp4" and meta["cut"] == "keyframe"
        assert (meta["num_frames"], round(meta["end"] * FPS)) == (len(clip), end)
        assert row["key"] == sample_key(meta) and meta["ext"] == "mp4"
    manifest = read_manifest(str(tmp_path))
    assert (
        (manifest.totals["videos"], manifest.totals["segments"])
        == (1, 26)
        == (summary.source_videos, summary.segments)
    )
    assert manifest.totals["hours"] == pytest.approx(video.duration / 3600, abs=1e-6)
    assert verify_shards(str(tmp_path)).ok


@pytest.mark.parametrize("tail", ["merge", "drop"])
def test_reencoded_segments_cut_exactly_and_short_tails(film, tmp_path, tail, caplog):
    root, video = film
    caplog.set_level("INFO", logger="pretrain.data.shards.segments")
    build_shards(
        "folder",
        str(root / "raw"),
        str(tmp_path),
        BuildOptions(
            shard_size_mb=0.05, reencode=True, crf=18, segment_seconds=10, min_segment_seconds=4, tail=tail
        ),
    )
    rows = samples(tmp_path)
    lengths = [r["meta"]["num_frames"] for r in rows]
    # 18 segments of exactly 80 frames; the 20-frame tail (< 4 s) joins the last one or is dropped.
    assert lengths == [80] * 17 + ([100] if tail == "merge" else [80])
    assert [r["meta"]["start"] for r in rows] == [10.0 * i for i in range(18)]
    said = "dropped" if tail == "drop" else "merged into a neighbour"
    assert (
        f"1 videos -> 18 segments (exact cuts (re-encoded)); 1 piece(s) shorter than 4.00 s {said}"
        in caplog.text
    )
    source = decoded(video.path).astype(np.int16)
    for row in rows[::6]:
        clip = decoded(row["video"]).astype(np.int16)
        first = round(row["meta"]["start"] * FPS)
        assert np.abs(clip - source[first : first + len(clip)]).mean() < 4  # the same frames, re-encoded
        assert row["meta"]["cut"] == "exact" and row["meta"]["original"]["codec"] == "h264"


def test_a_damaged_part_skips_only_its_segment(film, tmp_path):
    root, video = film
    raw = tmp_path / "raw"
    data = bytearray(video.path.read_bytes())
    with av.open(str(video.path)) as container:  # garble the packets of frames 192-199 (24-25 s)
        stream = container.streams.video[0]
        spots = [
            (p.pos, p.size)
            for p in container.demux(stream)
            if p.size and 192 <= round(float(p.pts * stream.time_base) * FPS) < 200
        ]
    rng = np.random.default_rng(0)
    for position, size in spots:
        data[position : position + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    (raw / "film.mp4").parent.mkdir(parents=True)
    (raw / "film.mp4").write_bytes(bytes(data))
    summary = build_shards("folder", str(raw), str(tmp_path / "out"), BuildOptions(segment_seconds=10))
    assert summary.segments == 17 and summary.skipped == 1
    (error,) = summary.errors
    assert (error["kind"], error["start"], error["end"]) == ("segment", 20.0, 30.0)
    assert "decode error" in error["reason"]
    assert read_manifest(str(tmp_path / "out")).totals["skipped_segments"] == 1
    whole = build_shards("folder", str(raw), str(tmp_path / "whole"))  # without segments: all or nothing
    assert (whole.videos, whole.skipped) == (0, 1)


def test_shot_changes_are_found_at_their_exact_frame(film, tmp_path):
    root, video = film
    assert detect_cuts(str(video.path)) == list(video.cuts)
    build_shards(
        "folder",
        str(root / "raw"),
        str(tmp_path),
        BuildOptions(
            shard_size_mb=0.05, reencode=True, segment_seconds=10, scenes=True, min_segment_seconds=0
        ),
    )
    starts = [round(r["meta"]["start"] * FPS) for r in samples(tmp_path)]
    shots = [0, *video.cuts]
    assert set(shots) <= set(starts)  # every shot starts a sample; long shots are cut every 80 frames
    assert sorted(set(starts) - set(shots)) == [s + 80 for s, n in zip(shots, SHOTS) if n > 80]


def test_segments_stream_like_videos(film, tmp_path):
    from pretrain.config import load_config
    from pretrain.data.streams.pretrain_stream import build_pretrain_loader

    root, _ = film
    build_shards(
        "folder", str(root / "raw"), str(tmp_path), BuildOptions(shard_size_mb=0.05, segment_seconds=20)
    )
    config = load_config(
        "pretrain/tiny",
        [
            "stage=pretrain",
            f"data.shards={tmp_path}",
            "data.split=all",
            "data.batch_size=3",
            "data.shuffle_buffer=1",
        ],
    )
    batches = list(build_pretrain_loader(config, rank=0, world_size=1))
    keys = [key for batch in batches for key in batch["key"]]
    assert sorted(keys) == sorted(r["key"] for r in samples(tmp_path)) and len(keys) == 9  # each segment once
    assert batches[0]["video"].shape == (3, 8, 96, 64)  # YUV 4:2:0 clips of 8 frames, 64 px


def test_cli_build_with_segments_says_where_cuts_go(film, tmp_path, capsys):
    root, _ = film
    assert (
        main(
            [
                "shards",
                "build",
                "folder",
                str(root / "raw"),
                str(tmp_path),
                "--segment-seconds",
                "30",
                "--tail",
                "drop",
                "--min-segment-seconds",
                "5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "segments: 6 from 1 video(s)" in out  # 6 x 30 s; the 2.5 s tail dropped
    with pytest.raises(SystemExit):
        main(["shards", "build", "--help"])
    assert "NEAREST KEYFRAME" in capsys.readouterr().out
    assert (
        main(["shards", "build", "folder", str(root / "raw"), str(tmp_path / "x"), "--segment-seconds", "-1"])
        == 1
    )
    assert "--segment-seconds=-1.0 must be > 0" in capsys.readouterr().err


def test_bench_long_video_reports_hours_per_minute(tmp_path, capsys):
    assert (
        main(["bench", "shards", str(tmp_path / "long"), "--long-video", "0.2", "--workers", "1", "--json"])
        == 0
    )
    rows = {row["mode"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    copy = rows["segments, stream copy"]
    # 12 s: one 10 s segment, the 2 s tail (< 5 s) merged into it
    assert copy["samples"] == 1 and copy["video_hours"] == pytest.approx(12 / 3600, abs=1e-4)
    assert rows["segments, re-encode"]["samples"] == 1 and all(
        r["hours_per_minute"] > 0 for r in rows.values()
    )
    (detection,) = [mode for mode in rows if mode.startswith("shot detection only")]
    assert detection.endswith("cuts exact)")


def test_a_rerun_reuses_each_videos_scan(film, tmp_path, monkeypatch):
    import pretrain.data.shards.segments as segments

    root, _ = film
    options = BuildOptions(segment_seconds=10, scenes=True)
    first = build_shards("folder", str(root / "raw"), str(tmp_path), options)
    monkeypatch.setattr(segments, "segment_video", lambda *a: pytest.fail("scanned again"))
    again = build_shards("folder", str(root / "raw"), str(tmp_path), options)
    assert again.segments == first.segments and again.resumed_shards == again.shards


def test_stream_copy_scenes_never_mix_shots(film, tmp_path):
    root, video = film
    build_shards(
        "folder",
        str(root / "raw"),
        str(tmp_path),
        BuildOptions(shard_size_mb=0.05, segment_seconds=10, scenes=True, min_segment_seconds=0),
    )
    rows = samples(tmp_path)
    bounds = [0, *video.cuts, video.num_frames]
    expected = []  # per shot: first keyframe at/after its cut to its last at/before the next (16-frame grid)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        begin, end = -(-start // GOP) * GOP, stop if stop == video.num_frames else stop // GOP * GOP
        inner = [begin + 80] if end - begin > 80 else []  # 10 s = 80 frames, on the keyframe grid here
        edges = [begin, *inner, end]
        expected += [(b, e, start, stop) for b, e in zip(edges[:-1], edges[1:]) if e > b]
    found = [
        (
            round(r["meta"]["start"] * FPS),
            round(r["meta"]["end"] * FPS),
            *(round(t * FPS) for t in r["meta"]["shot"]),
        )
        for r in rows
    ]
    assert found == expected and len(found) == 24  # the 23-frame shots hold no keyframe-to-keyframe part
    for row, (begin, end, _, _) in zip(rows, found):
        assert row["meta"]["cut"] == "keyframe_in_shot"
        assert len(decoded(row["video"])) == end - begin  # the copy holds exactly the planned frames
        sample = tmp_path / "sample.mp4"
        sample.write_bytes(row["video"])
        assert detect_cuts(str(sample)) == []  # one shot per sample

"""Building real shards from synthetic UCF101 / HMDB51 / folder corpora with corrupt inputs."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import av
import fsspec
import pytest
import webdataset as wds

from pretrain.data.generated.corpora import (
    write_corrupt_video,
    write_folder_tree,
    write_hmdb51_tree,
    write_ucf101_tree,
)
from pretrain.data.shards import (
    BuildOptions,
    ShardsError,
    build_shards,
    inspect_shards,
    read_manifest,
    verify_shards,
)
from pretrain.data.shards.errors import StrictModeError
from pretrain.data.shards.keys import key_for_path
from pretrain.data.shards.manifest import parse_split_name, sample_in_split

CORRUPT = {
    "Archery/v_Archery_g02_c01.avi": "zero-byte",
    "Archery/v_Archery_g03_c01.avi": "truncated",
    "ApplyLipstick/v_ApplyLipstick_g04_c01.avi": "not-video",
}


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    corpus = write_ucf101_tree(root, classes=3)
    good = root / "UCF-101" / corpus.videos[0]
    for relative, kind in CORRUPT.items():
        write_corrupt_video(root / "UCF-101" / relative, kind, good_video=good)
    return corpus


@pytest.fixture(scope="module")
def ucf_shards(ucf, tmp_path_factory):
    out = tmp_path_factory.mktemp("ucf_shards")
    summary = build_shards("ucf101", str(ucf.root), str(out), BuildOptions(shard_size_mb=0.03))
    return out, summary


def _samples(out: Path) -> list[dict]:
    manifest = read_manifest(str(out))
    dataset = wds.WebDataset(manifest.shard_urls(), shardshuffle=False, empty_check=False)
    return [
        {
            "key": s["__key__"],
            "json": json.loads(s["json"]),
            "exts": sorted(k for k in s if not k.startswith("_")),
        }
        for s in dataset
    ]


def test_ucf101_build_counts_labels_and_errors(ucf, ucf_shards):
    out, summary = ucf_shards
    assert (summary.videos, summary.skipped, summary.resumed_shards) == (12, 3, 0)
    manifest = read_manifest(str(out))
    assert manifest.classes == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"] and manifest.num_classes == 3
    assert manifest.totals["samples"] == 12 and manifest.totals["input_videos"] == 15
    assert manifest.totals["skipped_videos"] == 3
    for split_id in "123":
        assert (manifest.count(split_id, "train"), manifest.count(split_id, "test")) == (9, 3)
        assert manifest.class_counts[split_id]["test"] == {c: 1 for c in manifest.classes}
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    reasons = {row["path"]: row["reason"] for row in errors}
    assert set(reasons) == set(CORRUPT)
    assert reasons["Archery/v_Archery_g02_c01.avi"] == "zero-byte file"
    assert reasons["Archery/v_Archery_g03_c01.avi"].startswith("truncated: ")
    assert reasons["ApplyLipstick/v_ApplyLipstick_g04_c01.avi"].startswith("not a readable video container")


def test_ucf101_samples_read_back_with_webdataset(ucf, ucf_shards):
    out, _ = ucf_shards
    samples = _samples(out)
    assert sorted(s["json"]["path"] for s in samples) == sorted(ucf.videos)
    assert len({s["key"] for s in samples}) == 12
    for sample in samples:
        meta = sample["json"]
        assert sample["key"] == key_for_path(meta["path"]) and sample["exts"] == ["avi", "json"]
        assert (
            meta["label"] == ucf.classes.index(meta["path"].split("/")[0]) == ucf.classes.index(meta["class"])
        )
        assert (meta["width"], meta["height"], meta["fps"], meta["num_frames"], meta["codec"]) == (
            80,
            64,
            25.0,
            16,
            "mpeg4",
        )
        assert meta["duration"] == pytest.approx(0.64) and meta["source"] == "ucf101"
        assert meta["split"] == meta["splits"]["1"]
        for split_id in "123":
            assert meta["path"] in ucf.splits[split_id][meta["splits"][split_id]]


def test_manifest_checksums_and_split_shard_index(ucf_shards):
    out, _ = ucf_shards
    manifest = read_manifest(str(out / "manifest.json"))
    assert len(manifest.shards) >= 4  # several shards, so per-split shard lists mean something
    for shard in manifest.shards:
        data = (out / shard.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (shard.bytes, shard.sha256)
    per_shard = Counter((s["key"], s["json"]["splits"]["2"]) for s in _samples(out))
    test_shards = manifest.splits["2"]["shards"]["test"]
    assert sum(test_shards.values()) == 3 == sum(1 for _, subset in per_shard if subset == "test")
    assert set(manifest.shard_names("2", "test")) == set(test_shards)
    assert sorted(out.glob("*.tar")) == sorted(out / s.name for s in manifest.shards)
    assert not list(out.rglob("*.partial-*"))


def test_split_names_select_samples(ucf, ucf_shards):
    out, _ = ucf_shards
    samples = [s["json"] for s in _samples(out)]
    for name, split_id, subset in (
        ("train", "1", "train"),
        ("test", "1", "test"),
        ("train3", "3", "train"),
        ("test2", "2", "test"),
    ):
        assert parse_split_name(name) == (split_id, subset)
        chosen = sorted(m["path"] for m in samples if sample_in_split(m, name))
        assert chosen == sorted(ucf.splits[split_id][subset])
    assert sum(sample_in_split(m, "all") for m in samples) == 12
    with pytest.raises(ShardsError, match="split 'val'"):
        parse_split_name("val")


def test_file_url_output(ucf, tmp_path):
    url = f"file://{tmp_path}/out"
    summary = build_shards("ucf101", str(ucf.root), url, BuildOptions(shard_size_mb=0.05))
    assert summary.videos == 12 and (tmp_path / "out" / "manifest.json").is_file()
    assert read_manifest(url + "/manifest.json").num_samples == 12 and verify_shards(url).ok


def test_inspect_and_verify(ucf_shards):
    out, _ = ucf_shards
    report = inspect_shards(str(out))
    assert report.samples == 12 and report.splits["1"] == {"test": 3, "train": 9}
    assert report.classes == {"ApplyEyeMakeup": 4, "ApplyLipstick": 4, "Archery": 4}
    assert report.split_classes["3"]["train"]["Archery"] == 3
    assert (report.resolutions, report.fps, report.codecs) == ({"80x64": 12}, {"25": 12}, {"mpeg4": 12})
    assert report.duration_s == pytest.approx(12 * 0.64)
    verified = verify_shards(str(out))
    assert verified.ok and (verified.shards_checked, verified.samples_checked) == (
        len(read_manifest(str(out)).shards),
        12,
    )


def test_verify_reports_a_damaged_shard(ucf_shards, tmp_path):
    out, _ = ucf_shards
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    manifest = read_manifest(str(copy))
    victim = copy / manifest.shards[1].name
    data = bytearray(victim.read_bytes())
    data[-3000:-2900] = bytes(b ^ 0xFF for b in data[-3000:-2900])  # inside the last video's bytes
    victim.write_bytes(bytes(data))
    (copy / manifest.shards[2].name).unlink()
    report = verify_shards(str(copy), workers=2)
    assert not report.ok
    assert f"{manifest.shards[1].name}: sha256 differs from the manifest" in report.failures
    assert f"{manifest.shards[2].name}: missing" in report.failures


def test_rerun_of_a_finished_build_resumes_everything(ucf, ucf_shards):
    out, first = ucf_shards
    before = read_manifest(str(out)).shards
    again = build_shards("ucf101", str(ucf.root), str(out), BuildOptions(shard_size_mb=0.03))
    assert again.resumed_shards == len(before) + 0 and again.videos == 12
    assert read_manifest(str(out)).shards == before


def test_rebuild_with_other_options_replaces_every_shard(tmp_path):
    write_folder_tree(tmp_path / "videos", classes=None, videos_per_class=6, suffixes=(".avi",))
    first = build_shards(
        "folder", str(tmp_path / "videos"), str(tmp_path / "out"), BuildOptions(shard_size_mb=0.01)
    )
    assert first.shards == 6
    second = build_shards(
        "folder",
        str(tmp_path / "videos"),
        str(tmp_path / "out"),
        BuildOptions(shard_size_mb=0.03, reencode=True, crf=40),
    )
    manifest = read_manifest(str(tmp_path / "out"))
    assert second.resumed_shards == 0 and second.videos == 6 and len(manifest.shards) == second.shards < 6
    assert sorted(p.name for p in (tmp_path / "out").glob("shard-*.tar")) == [s.name for s in manifest.shards]
    assert inspect_shards(str(tmp_path / "out")).codecs == {"h264": 6}


def test_strict_mode_fails_on_the_first_bad_video(ucf, tmp_path):
    with pytest.raises(StrictModeError, match=r"v_Archery_g0[23]_c01.avi|v_ApplyLipstick_g04_c01.avi"):
        build_shards("ucf101", str(ucf.root), str(tmp_path / "out"), BuildOptions(strict=True))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_strict_mode_stops_worker_processes_too(ucf, tmp_path):
    with pytest.raises(StrictModeError, match="--strict"):
        build_shards(
            "ucf101",
            str(ucf.root),
            str(tmp_path / "out"),
            BuildOptions(strict=True, workers=2, shard_size_mb=0.02),
        )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_hmdb51_build_keeps_each_video_once_with_all_splits(tmp_path):
    corpus = write_hmdb51_tree(tmp_path / "hmdb", classes=3, videos_per_class=4)
    summary = build_shards(
        "hmdb51", str(tmp_path / "hmdb"), str(tmp_path / "out"), BuildOptions(shard_size_mb=0.05)
    )
    assert summary.videos == 12 and summary.skipped == 0
    manifest = read_manifest(str(tmp_path / "out"))
    for split_id in "123":
        assert {k: manifest.splits[split_id][k] for k in ("train", "test", "unused")} == {
            "train": 6,
            "test": 3,
            "unused": 3,
        }
    samples = _samples(tmp_path / "out")
    assert sorted(s["json"]["path"] for s in samples) == sorted(corpus.videos)
    assert {s["json"]["class"]: s["json"]["label"] for s in samples} == {
        "brush_hair": 0,
        "cartwheel": 1,
        "catch": 2,
    }


def test_workers_give_byte_identical_shards(tmp_path):
    write_hmdb51_tree(tmp_path / "hmdb", classes=2, videos_per_class=4)
    one = build_shards(
        "hmdb51", str(tmp_path / "hmdb"), str(tmp_path / "one"), BuildOptions(shard_size_mb=0.02)
    )
    two = build_shards(
        "hmdb51", str(tmp_path / "hmdb"), str(tmp_path / "two"), BuildOptions(shard_size_mb=0.02, workers=2)
    )
    assert one.videos == two.videos == 8
    assert read_manifest(str(tmp_path / "one")).shards == read_manifest(str(tmp_path / "two")).shards


def test_memory_filesystem_output(tmp_path):
    write_folder_tree(tmp_path / "videos", classes=["run", "jump"], videos_per_class=2)
    url = "memory://tubelet-test/shards"
    summary = build_shards(
        "folder", str(tmp_path / "videos"), url, BuildOptions(labels_from_folders=True, workers=2)
    )
    assert summary.videos == 4 and summary.output == url
    manifest = read_manifest(url)
    assert manifest.classes == ["jump", "run"] and manifest.split_ids == []
    assert verify_shards(url).ok
    fs = fsspec.filesystem("memory")
    assert fs.exists("/tubelet-test/shards/manifest.json")
    assert inspect_shards(url).containers == {"mp4": 2, "avi": 2}
    with pytest.raises(
        ShardsError, match=r"in-memory filesystem is invisible to the workers of a distributed build"
    ):
        build_shards("folder", str(tmp_path / "videos"), url, runner=lambda task, plans, config: iter(()))
    fs.rm("/tubelet-test", recursive=True)


def test_reencode_resizes_changes_fps_and_keeps_short_gops(tmp_path):
    write_folder_tree(tmp_path / "videos", classes=None, videos_per_class=2, suffixes=(".avi",))
    build_shards(
        "folder",
        str(tmp_path / "videos"),
        str(tmp_path / "out"),
        BuildOptions(resize_short=32, fps=12.5, gop_seconds=0.32, crf=30),
    )
    samples = list(
        wds.WebDataset(
            read_manifest(str(tmp_path / "out")).shard_urls(), shardshuffle=False, empty_check=False
        )
    )
    assert len(samples) == 2
    for sample in samples:
        meta = json.loads(sample["json"])
        assert (meta["ext"], meta["codec"], meta["width"], meta["height"], meta["fps"]) == (
            "mp4",
            "h264",
            40,
            32,
            12.5,
        )
        assert meta["num_frames"] == 8 and meta["original"]["width"] == 80  # 16 frames at 25 fps -> 8 at 12.5
        with av.open(io.BytesIO(sample["mp4"])) as container:
            packets = sorted(
                (p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.size
            )
        keyframe_at = [index for index, (_, key) in enumerate(packets) if key] + [len(packets)]
        assert len(packets) == 8 and keyframe_at[0] == 0
        assert max(b - a for a, b in zip(keyframe_at, keyframe_at[1:])) <= 4  # gop 0.32 s = 4 frames


def test_layout_errors_are_shards_errors(tmp_path):
    with pytest.raises(ShardsError, match="not a directory"):
        build_shards("ucf101", str(tmp_path / "nope"), str(tmp_path / "out"))
    with pytest.raises(ShardsError, match="shard_size_mb=0 must be > 0"):
        build_shards("folder", str(tmp_path), str(tmp_path / "out"), BuildOptions(shard_size_mb=0))

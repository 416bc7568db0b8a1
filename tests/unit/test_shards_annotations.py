"""Annotation lists: Kinetics CSVs over full-length downloads and the mirror's trimmed clips, and a
generic CSV; spans and labels land exactly, missing videos are listed, not fatal."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
import webdataset as wds

from pretrain.cli import main
from pretrain.data.generated.long_video import write_scene_video
from pretrain.data.shards import BuildOptions, build_shards, read_manifest

FPS = 8
FULL_ID, TRIMMED_ID, GONE_ID = "-aB_c9dE0fG", "zz_Trim-001", "missing0001"  # 11-character YouTube ids


def _frames(data) -> np.ndarray:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.int16)


def _samples(out) -> dict[tuple, dict]:
    found = {}
    for sample in wds.WebDataset(read_manifest(str(out)).shard_urls(), shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        found[(meta["path"], meta.get("start"), meta.get("end"))] = {
            "meta": meta,
            "video": sample[meta["ext"]],
        }
    return found


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    root = tmp_path_factory.mktemp("k400")
    full = write_scene_video(
        root / "videos" / "full" / f"{FULL_ID}.mp4", [80, 80, 80, 80, 80], fps=FPS, gop=16
    )
    write_scene_video(root / "videos" / "train" / f"{TRIMMED_ID}_000010_000020.mp4", [40, 40], fps=FPS)
    (root / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        f"juggling balls,{FULL_ID},10,20,train\n"
        f"abseiling,{FULL_ID},30,40,train\n"
        f"abseiling,{TRIMMED_ID},10,20,train\n"
        f"zumba,{GONE_ID},0,10,train\n"
    )
    (root / "validate.csv").write_text(
        f"label,youtube_id,time_start,time_end,split\nzumba,{FULL_ID},20.5,25.5,val\n"
    )
    return root, full


def test_kinetics_lists_cut_full_videos_and_keep_trimmed_clips(kinetics, tmp_path):
    root, full = kinetics
    lists = (str(root / "train.csv"), str(root / "validate.csv"))
    summary = build_shards(
        "kinetics", str(root / "videos"), str(tmp_path), BuildOptions(shard_size_mb=0.01, annotations=lists)
    )
    assert (summary.videos, summary.skipped, summary.dataset) == (4, 0, "kinetics400")
    manifest = read_manifest(str(tmp_path))
    assert manifest.classes == ["abseiling", "juggling balls", "zumba"]  # every row's label, present or not
    assert (manifest.count("1", "train"), manifest.count("1", "test")) == (3, 1)
    (missing,) = summary.split_problems
    assert missing.endswith(
        f"train.csv:5: video {GONE_ID} not found (neither {GONE_ID}_000000_000010.* nor {GONE_ID}.*)"
    )
    samples = _samples(tmp_path)
    source = _frames(full.path)
    path = f"full/{FULL_ID}.mp4"
    for (start, end), label in {
        (10.0, 20.0): "juggling balls",
        (30.0, 40.0): "abseiling",
        (20.5, 25.5): "zumba",
    }.items():
        sample = samples[(path, start, end)]
        meta, clip = sample["meta"], _frames(sample["video"])
        first, count = round(start * FPS), round((end - start) * FPS)
        assert (meta["num_frames"], len(clip), meta["class"]) == (count, count, label)
        assert meta["label"] == manifest.classes.index(label) and meta["span_kind"] == "annotation"
        # Every frame is its source frame, re-encoded: 10-20 s and 30-40 s are whole shots, so one frame
        # early or late would hold a frame of another shot (mean difference > 40).
        assert np.abs(clip - source[first : first + count]).mean(axis=(1, 2, 3)).max() < 8
    trimmed = samples[(f"train/{TRIMMED_ID}_000010_000020.mp4", None, None)]["meta"]
    assert (trimmed["class"], trimmed["num_frames"], trimmed["split"]) == (
        "abseiling",
        80,
        "train",
    )  # kept whole
    assert samples[(path, 20.5, 25.5)]["meta"]["splits"] == {"1": "test"}  # val -> split 1 test


def test_generic_list_with_paths_names_and_splits(kinetics, tmp_path, capsys):
    root, _ = kinetics
    listing = tmp_path / "spans.csv"
    listing.write_text(
        "video,start,end,label,split\n"
        f"full/{FULL_ID}.mp4,0,5,walk,train\n"
        f"{FULL_ID},12.5,17.5,run,test\n"
        "nowhere/else.mp4,0,5,run,train\n"
        f"{FULL_ID},9,3,run,train\n"
    )
    code = main(
        [
            "shards",
            "build",
            "annotations",
            str(root / "videos"),
            str(tmp_path / "out"),
            "--annotations",
            str(listing),
        ]
    )
    assert code == 0
    samples = _samples(tmp_path / "out")
    assert sorted((k[1], v["meta"]["class"], v["meta"]["split"]) for k, v in samples.items()) == [
        (0.0, "walk", "train"),
        (12.5, "run", "test"),
    ]
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["line"], e["reason"].split(" ")[0]) for e in errors] == [(5, "unusable"), (4, "video")]
    assert "2 split-file problem(s)" in capsys.readouterr().out


def test_annotation_source_needs_a_list(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    assert main(["shards", "build", "kinetics", str(tmp_path / "v"), str(tmp_path / "out")]) == 1
    assert "needs --annotations" in capsys.readouterr().err


def test_annotated_spans_are_not_segmented_again(kinetics, tmp_path, capsys):
    root, _ = kinetics
    assert (
        main(
            [
                "shards",
                "build",
                "kinetics",
                str(root / "videos"),
                str(tmp_path),
                "--annotations",
                str(root / "train.csv"),
                "--segment-seconds",
                "5",
            ]
        )
        == 1
    )
    assert "annotated spans are samples already" in capsys.readouterr().err


def test_kinetics_with_the_training_encoding_keeps_every_fourth_source_frame(kinetics, tmp_path):
    root, full = kinetics
    options = BuildOptions(shard_size_mb=0.01, annotations=(str(root / "train.csv"),), train_encoding=True)
    build_shards("kinetics", str(root / "videos"), str(tmp_path), options)
    assert read_manifest(str(tmp_path)).stored_stride == 4
    samples, source = _samples(tmp_path), _frames(full.path)
    for start, end in ((10.0, 20.0), (30.0, 40.0)):
        sample = samples[(f"full/{FULL_ID}.mp4", start, end)]
        clip, first, count = _frames(sample["video"]), round(start * FPS), round((end - start) * FPS)
        assert sample["meta"]["num_frames"] == len(clip) == -(-count // 4)
        # Stored frame k is source frame first + 4k (another shot's frame would differ by > 40).
        assert np.abs(clip - source[first : first + count : 4]).mean(axis=(1, 2, 3)).max() < 8
    trimmed = samples[(f"train/{TRIMMED_ID}_000010_000020.mp4", None, None)]["meta"]
    assert trimmed["num_frames"] == 20 and trimmed["original"]["num_frames"] == 80  # whole files too

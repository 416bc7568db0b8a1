"""Special files and huge files as videos: only regular files are read, and never whole
(issue 24 §2, §3). Memory is capped with RLIMIT_AS in a child process; FIFOs get a timeout."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from limited_run import GIB, run_tubelet

from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.video.write import write_video
from pretrain.errors import DataError
from pretrain.evaluate.inference import read_clip
from pretrain.models import VideoClassifier
from pretrain.models.arch import ArchSpec
from pretrain.weights import save_export

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)
SPECIAL = {"zero.mp4": "a character device", "random.mp4": "a character device", "fifo.mp4": "a FIFO"}


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "videos"
    write_folder_tree(root, classes=None, videos_per_class=2, suffixes=(".mp4",))
    os.symlink("/dev/zero", root / "zero.mp4")
    os.symlink("/dev/urandom", root / "random.mp4")
    os.mkfifo(root / "fifo.mp4")
    with open(root / "huge.mp4", "wb") as handle:  # 3 GiB of sparse zeros: no disk, no real video
        handle.truncate(3 * GIB)
    return root


@pytest.mark.parametrize("extra", [[], ["--segment-seconds", "1"]], ids=["whole", "segments"])
def test_special_files_are_skipped_and_listed_and_a_huge_file_is_not_read_whole(
    hostile_tree, tmp_path, extra
):
    out = tmp_path / "out"
    result = run_tubelet(
        ["shards", "build", "folder", str(hostile_tree), str(out), *extra], memory_bytes=2 * GIB, timeout=90
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    reasons = {row["path"]: row["reason"] for row in rows}
    for name, kind in SPECIAL.items():
        assert reasons[name] == f"not a regular file ({kind})"
    assert "huge.mp4" in reasons  # probed from disk and rejected under a 2 GiB address-space cap
    assert not list(out.rglob("*.partial*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["samples"] >= 2


def test_predict_lists_special_and_huge_files_and_scores_the_good_one(hostile_tree, tmp_path):
    save_export(VideoClassifier(SPEC, 2), None, tmp_path / "export", class_names=["a", "b"])
    good = sorted(hostile_tree.glob("clip*.mp4"))[0]
    videos = [str(hostile_tree / name) for name in (*SPECIAL, "huge.mp4")] + [str(good)]
    result = run_tubelet(
        ["predict", str(tmp_path / "export"), *videos, "--clips", "1", "--crops", "1"],
        memory_bytes=2 * GIB,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith(str(hostile_tree))
    )
    for name, kind in SPECIAL.items():
        assert lines[str(hostile_tree / name)] == f"skipped: not a regular file ({kind})"
    assert lines[str(hostile_tree / "huge.mp4")].startswith("skipped: not a video this tool can read")
    assert lines[str(good)].startswith(("a ", "b "))  # top classes with their probabilities


def test_explain_refuses_a_fifo_in_one_line(hostile_tree):
    with pytest.raises(DataError, match=r"fifo.mp4: not a regular file \(a FIFO\)$"):
        read_clip(hostile_tree / "fifo.mp4", SPEC, stride=1)


def test_explain_reads_a_truncated_video_whose_header_over_counts(tmp_path):
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(64)]
    video = write_video(tmp_path / "cut.avi", frames, fps=25)
    with open(video, "r+b") as handle:  # the header still says 64 frames; about 25 remain
        handle.truncate(os.path.getsize(video) // 2)
    clip = read_clip(
        video, SPEC, stride=4
    )  # its centre clip lies past the real end: the last frame stands in
    assert tuple(clip.video.shape) == (3, 4, 32, 32)


def test_shards_verify_reads_a_256_mib_sample_in_bounded_memory(tmp_path):
    write_folder_tree(tmp_path / "videos", classes=None, videos_per_class=2, suffixes=(".mp4",))
    out = tmp_path / "out"
    assert run_tubelet(["shards", "build", "folder", str(tmp_path / "videos"), str(out)]).returncode == 0
    shard = next(out.glob("shard-*.tar"))
    big, meta = tmp_path / "big.mp4", tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(256 << 20)  # sparse on the source side; the tar member holds real zeros
    meta.write_text(json.dumps({"path": "big", "ext": "mp4", "num_frames": 1}))
    with tarfile.open(shard, "a") as tar:
        tar.add(meta, arcname="big.json")
        tar.add(big, arcname="big.mp4")
    big.unlink()
    result = run_tubelet(["shards", "verify", str(out)], memory_bytes=400 << 20, timeout=180)
    report = result.stdout + result.stderr
    assert result.returncode == 1, report[-2000:]
    assert f"{shard.name}: 3 samples, manifest says 2" in report
    assert f"{shard.name}: sample big: does not decode" in report

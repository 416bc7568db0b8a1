"""A segmenting build killed mid-way and run again equals a clean build: no segment missing or twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from pretrain.data.generated.long_video import write_scene_video
from pretrain.data.shards import BuildOptions, build_shards, read_manifest

CLI = "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))"
# One 1 s stream-copied segment per shard (a keyframe every second): 182 small tasks, each probed by
# decoding, slow enough to be killed mid-way. Stream copy, because byte equality is the test and
# x264 is not reproducible here: 6 encodes of one 64x48 segment in one process gave 5 bitstreams.
OPTIONS = ["--segment-seconds", "1", "--shard-size-mb", "0.0001", "--workers", "2"]


def _keys(out: Path) -> list[str]:
    keys = []
    for shard in read_manifest(str(out)).shards:
        with tarfile.open(out / shard.name) as tar:
            keys += [m.name[: -len(".json")] for m in tar if m.name.endswith(".json")]
    return keys


def test_killed_segmenting_build_resumes_to_the_clean_build(tmp_path):
    write_scene_video(tmp_path / "raw" / "film.mp4", [40, 64, 23, 100, 80, 57] * 4 + [4], fps=8, gop=8)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        CLI,
        "shards",
        "build",
        "folder",
        str(tmp_path / "raw"),
        str(out),
        *OPTIONS,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((out / "_build").glob("shard-*.json"))) < 10 and time.monotonic() < deadline:
        assert process.poll() is None, "the build finished before it could be killed"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list((out / "_build").glob("shard-*.json")))
    assert not (out / "manifest.json").exists() and 10 <= done < 182

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "segments: 183 from 1 video(s)" in resumed.stdout
    )  # 1460 frames: 182 x 8 + a 0.5 s tail (= S/2: kept)
    clean = build_shards(
        "folder",
        str(tmp_path / "raw"),
        str(tmp_path / "clean"),
        BuildOptions(shard_size_mb=0.0001, segment_seconds=1),
    )
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == clean.segments
    assert read_manifest(str(out)).shards == read_manifest(str(tmp_path / "clean")).shards  # same bytes
    metas = [json.loads(line) for line in _jsons(out)]
    assert sum(m["num_frames"] for m in metas) == 1460


def _jsons(out: Path) -> list[str]:
    lines = []
    for shard in read_manifest(str(out)).shards:
        with tarfile.open(out / shard.name) as tar:
            lines += [tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".json")]
    return lines

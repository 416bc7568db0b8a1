"""A real `tubelet shards build` process killed mid-way, then run again: every input exactly once,
no partial shard ever visible, and the same bytes as an uninterrupted build."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psutil
import pytest

from pretrain.data.generated.corpora import write_ucf101_tree
from pretrain.data.shards import read_manifest

CLI = "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))"
# One video per shard and re-encoding keep the build slow enough to be killed in the middle.
OPTIONS = ["--shard-size-mb", "0.001", "--reencode", "--crf", "35"]
TRAIN_OPTIONS = ["--shard-size-mb", "0.001", "--train-encoding", "--crf", "35"]


def _build_command(corpus: Path, out: Path, options: list[str]) -> list[str]:
    """`tubelet shards build ucf101 CORPUS OUT OPTIONS` in a fresh Python process, as a user runs it."""
    return [sys.executable, "-c", CLI, "shards", "build", "ucf101", str(corpus), str(out), *options]


def _start_build(corpus: Path, out: Path, workers: int, options: list[str]) -> subprocess.Popen:
    command = _build_command(corpus, out, [*options, "--workers", str(workers)])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_parts(out: Path, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((out / "_build").glob("shard-*.json"))) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"build finished or stalled before {count} shards: {process.poll()}")


def _visible_tars_are_complete(out: Path) -> int:
    """Every `shard-*.tar` a reader can see is a whole tar (partials use another name)."""
    samples = 0
    for path in sorted(out.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            names = tar.getnames()
        assert len(names) % 2 == 0 and names, path
        samples += len(names) // 2
    return samples


@pytest.mark.slow
@pytest.mark.parametrize("workers, encoding", [(1, "reencode"), (2, "reencode"), (2, "train")])
def test_killed_build_resumes_to_the_same_shards(tmp_path, workers, encoding):
    corpus = write_ucf101_tree(tmp_path / "ucf", classes=8)  # 32 videos
    out = tmp_path / "out"
    options = TRAIN_OPTIONS if encoding == "train" else OPTIONS
    process = _start_build(tmp_path / "ucf", out, workers, options)
    _wait_for_parts(out, 4, process)
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) == (0 if workers == 1 else workers)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive  # worker processes die with the build: no orphan keeps writing shards
    assert not (out / "manifest.json").exists()
    done_before = len(list((out / "_build").glob("shard-*.json")))
    assert 4 <= done_before < 32
    assert _visible_tars_are_complete(out) >= 4

    resumed = subprocess.run(
        _build_command(tmp_path / "ucf", out, options), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    resumed_shards = int(re.search(r"(\d+) shard\(s\) resumed", resumed.stdout).group(1))
    assert done_before <= resumed_shards < 32  # finished shards were kept, not rebuilt
    manifest = read_manifest(str(out))
    assert manifest.num_samples == 32 == _visible_tars_are_complete(out)
    paths = [json.loads(line)["path"] for line in _jsons(out, manifest)]
    assert sorted(paths) == sorted(corpus.videos)  # each input exactly once
    assert not list(out.rglob("*.partial-*"))

    # The uninterrupted reference runs as the user would, in a fresh process: built inside this
    # pytest process, one training-encoded shard of 32 once came out with other bytes (a rare
    # nondeterminism of in-process builds, not yet explained; the fresh-process builds always agree).
    reference = subprocess.run(
        _build_command(tmp_path / "ucf", tmp_path / "reference", options),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr
    assert read_manifest(str(tmp_path / "reference")).shards == manifest.shards
    assert manifest.stored_stride == (4 if encoding == "train" else 1)


def _jsons(out: Path, manifest) -> list[str]:
    lines = []
    for shard in manifest.shards:
        with tarfile.open(out / shard.name) as tar:
            lines += [tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".json")]
    return lines

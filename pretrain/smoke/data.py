"""Smoke step 1: a labeled motion dataset in the UCF101 layout (real AVIs), built into shards by the
real builder, then verified (sizes, sha256 and a decode of every sample against the manifest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pretrain.smoke.plan import SmokePlan
from pretrain.smoke.report import SmokeReport

NUM_CLASSES = 4  # the motion dataset's classes (up/down × slow/fast)


@dataclass(frozen=True)
class SmokeData:
    root: Path
    """The dataset tree (UCF-101/, ucfTrainTestlist/)."""
    shards: Path
    test_videos: list[str]
    """Split-1 test videos, paths relative to root/UCF-101."""

    def video_path(self, relative: str) -> Path:
        return self.root / "UCF-101" / relative


def prepare_data(out: Path, plan: SmokePlan, report: SmokeReport) -> SmokeData:
    from pretrain.data.generated.motion_dataset import write_motion_dataset
    from pretrain.data.shards import BuildOptions, build_shards, read_manifest, verify_shards

    root, shards = out / "data" / "motion", out / "shards" / "motion"
    groups = tuple(plan.test_groups) + tuple(plan.train_groups)
    corpus = write_motion_dataset(root, groups=groups, num_frames=plan.num_frames)
    expected = NUM_CLASSES * len(groups)
    report.check(
        "videos_written",
        len(corpus.videos) == expected
        and all((root / "UCF-101" / v).stat().st_size > 0 for v in corpus.videos),
        f"{len(corpus.videos)} of {expected} videos",
    )
    build_shards("ucf101", str(root), str(shards), BuildOptions(shard_size_mb=1))
    manifest = read_manifest(str(shards))
    report.check(
        "shards_built",
        manifest.num_samples == expected and len(manifest.classes) == NUM_CLASSES,
        f"{manifest.num_samples} samples in {len(manifest.shards)} shards, {len(manifest.classes)} classes",
    )
    verified = verify_shards(str(shards))
    report.check(
        "shards_verified",
        verified.ok and verified.samples_checked == expected,
        f"{verified.samples_checked} samples decoded, problems: {verified.failures[:3]}",
    )
    test = sorted(corpus.splits["1"]["test"])
    report.check(
        "split1_test_videos", len(test) == NUM_CLASSES * len(plan.test_groups), f"{len(test)} test videos"
    )
    return SmokeData(root, shards, test)

"""`tubelet quickstart`: the whole path on one machine, no downloads.

synthetic unlabeled corpus + labeled motion dataset (UCF101 layout, real AVIs)
  → shards (the real builder) → pretrain `tiny` → export
  → fine-tune from the export and from scratch (same budget, several seeds) → multi-view test
  → results table, loss curves, reconstruction grid, confusion matrix, offline W&B runs.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.config import RunConfig, load_config
from pretrain.data.generated.motion_dataset import MOTIONS, motion_frames, write_motion_dataset
from pretrain.data.shards import BuildOptions, build_shards, read_manifest
from pretrain.data.video.write import write_video
from pretrain.runtime.eta import StageEta, StageWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuickstartPlan:
    """Sizes of one quickstart; `small()` is the CI setting."""

    unlabeled_videos: int = 320
    """Unlabeled clips for pretraining (all motions, new seeds; labels are not stored)."""
    clips_per_group: int = 1
    """Labeled clips per class and UCF101 group (25 groups; split 1 tests 7 of them)."""
    pretrain_epochs: int = 12
    """Pretraining epochs over the unlabeled corpus."""
    finetune_epochs: int = 12
    """Fine-tuning epochs, the same for the pretrained and the scratch model."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Fine-tuning seeds; each seed fine-tunes both models."""
    num_frames: int = 32
    """Frames per synthetic video (clips sample 8 at stride 2)."""
    backbone: str = "vit"
    """`model.backbone` of every stage: vit, timesformer or vivit."""
    shuffle_control: bool = True
    """Also test every fine-tuned model on clips with their frames shuffled (motion must matter)."""
    plumbing_check: bool = False
    """The report says this run only checks that every stage runs (`--small`: too few clips and
    steps for pretraining to show; 1 / classes is chance), not that pretraining helps."""
    train_encoding: bool = False
    """Pretrain on unlabeled shards built with `--train-encoding` (stored stride = the tiny recipe's
    data.stride); the labeled shards stay whole-rate."""

    @classmethod
    def small(cls) -> QuickstartPlan:
        return cls(
            unlabeled_videos=96,
            pretrain_epochs=8,
            finetune_epochs=6,
            seeds=(0,),
            num_frames=24,
            shuffle_control=False,
            plumbing_check=True,
        )

    def finetune_warmup_epochs(self) -> int:
        """A quarter of the fine-tuning epochs (3 of 12). With one (a tenth), ViViT's factorised
        encoder stayed near chance on one seed in three even with its patch tokens averaged."""
        return max(1, self.finetune_epochs // 4)

    def pretrain_steps(self, batch_size: int) -> int:
        return self.unlabeled_videos // batch_size * self.pretrain_epochs


@dataclass
class StageRecord:
    name: str
    run_dir: Path
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None
    global_step: int = 0


@dataclass
class QuickstartResult:
    out: Path
    pretrain: StageRecord
    finetunes: list[tuple[str, int, StageRecord]]  # (init kind, seed, record)
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    backbone: str = "vit"
    num_classes: int | None = None
    """Classes of the labeled corpus."""
    plumbing_check: bool = False
    """From the plan: the report calls the accuracies a plumbing check, not a result."""


def write_unlabeled_corpus(root: Path, videos: int, num_frames: int) -> Path:
    """`root/clip_NNNN.avi`, motions cycled; seeds disjoint from the labeled set's."""
    classes = list(MOTIONS)
    make = motion_frames(classes, num_frames=num_frames)
    for index in range(videos):
        path = root / f"clip_{index:04d}.avi"
        if not path.exists():  # a rerun of the quickstart reuses what it wrote
            write_video(path, make(index % len(classes), 100_000 + index))
    return root


def prepare_data(out: Path, plan: QuickstartPlan) -> tuple[Path, Path]:
    """Corpora on disk, then shards through the real builder (resumable: a rerun is quick)."""
    labeled_root = out / "data" / "motion"
    if not (labeled_root / "ucfTrainTestlist").exists():
        write_motion_dataset(labeled_root, clips_per_group=plan.clips_per_group, num_frames=plan.num_frames)
    unlabeled_root = write_unlabeled_corpus(
        out / "data" / "unlabeled", plan.unlabeled_videos, plan.num_frames
    )
    labeled_shards = out / "shards" / "motion"
    unlabeled_shards = out / "shards" / ("unlabeled-train-encoding" if plan.train_encoding else "unlabeled")
    # Its own name: the UCF101 layout, but not UCF101 (no dataset-card count warnings).
    build_shards(
        "ucf101", str(labeled_root), str(labeled_shards), BuildOptions(shard_size_mb=4, name="motion")
    )
    encoding = {}
    if plan.train_encoding:
        encoding = {"train_encoding": True, "train_stride": load_config("pretrain/tiny").data.stride}
    build_shards(
        "folder",
        str(unlabeled_root),
        str(unlabeled_shards),
        BuildOptions(shard_size_mb=4, name="unlabeled", **encoding),
    )
    return labeled_shards, unlabeled_shards


def stage_config(recipe: str, out: Path, run_name: str, overrides: list[str]) -> RunConfig:
    """A shipped tiny recipe, run on a GPU when present (accelerator/precision auto)."""
    common = [
        f"trainer.output_dir={out / 'runs'}",
        f"trainer.run_name={run_name}",
        "trainer.accelerator=auto",
        "trainer.precision=auto",
        "logging.wandb=offline",
    ]
    return load_config(recipe, common + overrides)


def timed_stage(name: str, config: RunConfig, eta: StageEta | None = None) -> StageRecord:
    from pretrain.train.entry import run_stage

    log.info("quickstart: %s ...", eta.line() if eta else name)
    started = time.perf_counter()
    result = run_stage(config)
    record = StageRecord(
        name,
        result.run_dir,
        time.perf_counter() - started,
        dict(result.metrics),
        result.last_checkpoint,
        result.global_step,
    )
    log.info("quickstart: %s done in %.0f s", name, record.seconds)
    return record


def stage_eta(pretrain: RunConfig, finetunes: list[tuple[str, int, RunConfig]], started: float) -> StageEta:
    """The quickstart's stages priced by their own steps: a fine-tune is not a pretraining."""
    from pretrain.train.stage import planned_steps

    return StageEta(
        [
            StageWork("pretrain", "pretrain", planned_steps(pretrain)),
            *(
                StageWork(f"finetune {kind} seed {seed}", "finetune", planned_steps(config))
                for kind, seed, config in finetunes
            ),
        ],
        started=started,
    )


def shuffled_top1(config: RunConfig, record: StageRecord, out: Path) -> float:
    """Test top-1 of the fine-tuned model on its test clips with their frames shuffled."""
    from pretrain.evaluate.run import evaluate

    results = evaluate(
        config,
        str(record.last_checkpoint),
        splits=(1,),
        shuffle_frames=True,
        out_dir=out / "runs" / f"{record.run_dir.name}-shuffled",
    )
    return results.per_split[1].top1


def pretraining_config(out: Path, plan: QuickstartPlan, unlabeled: Path) -> RunConfig:
    recipe = load_config("pretrain/tiny")
    recon_every = max(1, plan.pretrain_steps(recipe.data.batch_size) // 3)  # a few grids per run
    return stage_config(
        "pretrain/tiny",
        out,
        "pretrain",
        [
            f"data.shards={unlabeled}",
            "data.split=all",
            f"optim.epochs={plan.pretrain_epochs}",
            f"optim.warmup_epochs={max(1, plan.pretrain_epochs // 6)}",
            f"logging.recon_every_steps={recon_every}",
            f"model.backbone={plan.backbone}",
        ],
    )


def finetune_config(
    out: Path, plan: QuickstartPlan, labeled: Path, kind: str, init: str, seed: int
) -> RunConfig:
    return stage_config(
        "finetune/tiny",
        out,
        f"finetune-{kind}-seed{seed}",
        [
            f"data.shards={labeled}",
            f"finetune.init={init}",
            f"trainer.seed={seed}",
            f"optim.epochs={plan.finetune_epochs}",
            f"optim.warmup_epochs={plan.finetune_warmup_epochs()}",
            f"model.backbone={plan.backbone}",
        ],
    )


def run_quickstart(
    out: Path, plan: QuickstartPlan = QuickstartPlan(), on_stage: Callable[[str], None] | None = None
) -> QuickstartResult:
    from pretrain.quickstart.report import write_report

    started = time.perf_counter()
    announce = on_stage or (lambda message: log.info("quickstart: %s", message))
    out.mkdir(parents=True, exist_ok=True)
    announce("writing synthetic videos and building shards")
    labeled, unlabeled = prepare_data(out, plan)
    pretrain_config, export_dir = pretraining_config(out, plan, unlabeled), out / "export"
    finetune_configs = [
        (kind, seed, finetune_config(out, plan, labeled, kind, init, seed))
        for seed in plan.seeds
        for kind, init in (("pretrained", str(export_dir)), ("scratch", "none"))
    ]
    eta = stage_eta(pretrain_config, finetune_configs, started)
    announce(f"pretraining the tiny VideoMAE ({plan.backbone}) on the unlabeled corpus")
    pretrain = pretrain_and_export(pretrain_config, export_dir, eta)
    finetunes = finetune_all(out, plan, finetune_configs, announce, eta)
    result = QuickstartResult(
        out,
        pretrain,
        finetunes,
        time.perf_counter() - started,
        backbone=plan.backbone,
        num_classes=len(read_manifest(str(labeled)).classes),
        plumbing_check=plan.plumbing_check,
    )
    result.files = write_report(result)
    return result


def pretrain_and_export(config: RunConfig, export_dir: Path, eta: StageEta) -> StageRecord:
    """Pretrain `tiny` on the unlabeled shards, then export its last checkpoint to `export_dir`."""
    from pretrain.weights import export_checkpoint

    pretrain = timed_stage("pretrain", config, eta)
    eta.finish(pretrain.global_step)
    shutil.rmtree(export_dir, ignore_errors=True)
    export_checkpoint(pretrain.last_checkpoint, export_dir)
    return pretrain


def finetune_all(
    out: Path,
    plan: QuickstartPlan,
    configs: list[tuple[str, int, RunConfig]],
    announce: Callable[[str], None],
    eta: StageEta,
) -> list[tuple[str, int, StageRecord]]:
    """Fine-tune from the export and from scratch, once per seed: (init kind, seed, record)."""
    finetunes = []
    for kind, seed, config in configs:
        announce(f"fine-tuning from {kind}, seed {seed}")
        record = timed_stage(f"finetune {kind} seed {seed}", config, eta)
        if plan.shuffle_control:
            record.metrics["test/top1_shuffled"] = shuffled_top1(config, record, out)
        eta.finish(record.global_step)
        finetunes.append((kind, seed, record))
    return finetunes

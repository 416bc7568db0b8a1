"""`tubelet evaluate`: multi-view testing of fine-tuned checkpoints on one or more official splits.

Each rank scores the test videos the eval stream hands it (every video exactly once over ranks ×
workers, all its views from one decode); the per-view logits are gathered on every rank, views of a
video are merged by mean softmax, and rank zero writes per split: predictions (JSONL) and the
confusion matrix (PNG), then the results table with split 1 beside the mean over the evaluated
splits (markdown + JSON).

A model fine-tuned on split k has seen the test videos of the other splits, so every split is
evaluated with its own checkpoint: `ckpt` is a template with `{split}`, or one path per split.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch

from pretrain.config import ConfigError, RunConfig
from pretrain.data.shards import read_manifest
from pretrain.data.streams.selection import check_splits
from pretrain.evaluate.metrics import SplitMetrics, confusion_matrix, merge_views, split_metrics
from pretrain.evaluate.reports import write_confusion_png, write_predictions, write_results
from pretrain.evaluate.views import ViewLogits, gather_views, score_batch
from pretrain.runtime.placement import resolve_placement
from pretrain.runtime.quiet import quiet_library_noise
from pretrain.weights import load_finetuned

log = logging.getLogger(__name__)


@dataclass
class EvalResults:
    per_split: dict[int, SplitMetrics]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


class EvalModule(pl.LightningModule):
    """Scores this rank's share of the eval stream; the gathered views land in `self.gathered`."""

    def __init__(self, model: torch.nn.Module, config: RunConfig, shuffle_frames: bool = False):
        super().__init__()
        self.model = model.eval()
        self.config = config
        self.shuffle_frames = shuffle_frames
        self.local = ViewLogits()
        self.gathered: ViewLogits | None = None

    def test_dataloader(self):
        from pretrain.data.streams.eval_stream import build_eval_loader

        return build_eval_loader(self.config, rank=self.global_rank, world_size=self.trainer.world_size)

    def test_step(self, batch: dict, batch_index: int) -> None:
        generator = torch.Generator().manual_seed(self.config.trainer.seed * 100_003 + batch_index)
        spec = self.model.spec
        views = score_batch(
            self.model,
            batch,
            self.shuffle_frames,
            generator,
            chunk=self.config.data.batch_size,
            pixel_stats=(spec.pixel_mean, spec.pixel_std),
        )
        self.local.extend(views)

    def on_test_epoch_end(self) -> None:
        self.gathered = gather_views(self.local)


def checkpoints_per_split(ckpt: str, splits: Sequence[int]) -> dict[int, str]:
    """`ckpt` with `{split}`, or comma-separated paths, one per split; a single plain path only
    for a single split."""
    if "{split}" in ckpt:
        return {split: ckpt.format(split=split) for split in splits}
    paths = [p for p in ckpt.split(",") if p]
    if len(paths) == len(splits):
        return dict(zip(splits, paths))
    raise ConfigError(
        f"ckpt={ckpt!r} gives {len(paths)} checkpoint(s) for splits {list(splits)}: a model fine-tuned on "
        "one split has trained on the others' test videos, so give one per split, e.g. "
        f"ckpt={split_pattern(paths[0] if paths else '', splits[0])} (each run's checkpoints/last folder) "
        "or ckpt=A,B,C"
    )


def run_folder(checkpoint: str) -> Path | None:
    """The stage run a checkpoint belongs to: RUN for RUN/checkpoints/NAME or RUN itself."""
    path = Path(checkpoint)
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return path if (path / "checkpoints").is_dir() else None


def split_pattern(checkpoint: str, split: int) -> str:
    """`runs/ucf_s1/checkpoints/last` for split 1 -> `runs/ucf_s{split}/checkpoints/last`."""
    run = run_folder(checkpoint)
    if run is None or str(split) not in run.name:
        return "runs/ucf_split{split}/checkpoints/last"
    head, _, tail = run.name.rpartition(str(split))
    return str(run.parent / (head + "{split}" + tail) / "checkpoints" / "last")


def default_out_dir(config: RunConfig, paths: dict[int, str], shuffle_frames: bool) -> Path:
    """`trainer.run_name` under `trainer.output_dir` when set; else beside the (first) checkpoint's
    run, or beside an export folder: `runs/RUN-evaluate`, wherever the command runs."""
    if config.trainer.run_name:
        return Path(config.trainer.output_dir) / config.trainer.run_name
    first = next(iter(paths.values()))
    base = run_folder(first) or Path(first)
    suffix = "-evaluate" + ("-splits-" + "-".join(map(str, paths)) if len(paths) > 1 else "")
    return base.parent / f"{base.name}{suffix}{'-shuffled' if shuffle_frames else ''}"


def build_eval_trainer(config: RunConfig) -> pl.Trainer:
    placement = resolve_placement(config)
    world = placement.devices * placement.num_nodes
    return pl.Trainer(
        accelerator=placement.accelerator,
        devices=placement.devices,
        num_nodes=placement.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision=placement.precision,
        logger=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )


def score_split(
    trainer: pl.Trainer, model: torch.nn.Module, config: RunConfig, shuffle_frames: bool = False
) -> ViewLogits:
    """Per-view logits of every test video of `config.finetune.split`, gathered from all ranks."""
    module = EvalModule(model, config, shuffle_frames)
    with quiet_library_noise():
        trainer.test(module, verbose=False)  # the test loop leaves our stream loader as it is
    return module.gathered


def evaluate(
    config: RunConfig,
    ckpt: str,
    splits: Sequence[int] = (1,),
    out_dir: str | Path | None = None,
    shuffle_frames: bool = False,
    trainer: pl.Trainer | None = None,
) -> EvalResults:
    """Evaluate one checkpoint per split; rank zero writes the outputs under `out_dir`."""
    paths = checkpoints_per_split(ckpt, splits)
    out = Path(out_dir) if out_dir else default_out_dir(config, paths, shuffle_frames)
    manifest = read_manifest(config.data.shards)
    class_names = manifest.classes
    checks = (check_splits(_split_config(config, None, split), manifest, evaluating=True) for split in paths)
    warnings = [warning for warning in checks if warning]  # ConfigError before any checkpoint is loaded
    for warning in warnings:
        log.warning("%s", warning)
    trainer = trainer or build_eval_trainer(config)
    results = EvalResults({}, out)
    for split, path in paths.items():
        finetuned = load_finetuned(path, config)
        if finetuned.model.num_classes != len(class_names):
            raise ConfigError(
                f"{path} predicts {finetuned.model.num_classes} classes but {config.data.shards} "
                f"has {len(class_names)}"
            )
        split_config = _split_config(config, finetuned.config, split)
        views = score_split(trainer, finetuned.model, split_config, shuffle_frames)
        scores = merge_views(*views.stacked())
        results.per_split[split] = split_metrics(scores)
        control = " with frames shuffled (the control: motion must matter)" if shuffle_frames else ""
        log.info("split %d%s: %s", split, control, results.per_split[split].summary())
        if trainer.is_global_zero:
            title = f"{_model_name({split: path})}, split {split}, seed {(finetuned.config or config).trainer.seed}"
            title += ", frames shuffled (control)" if shuffle_frames else ""
            results.files.update(_write_split(scores, class_names, out / f"split{split}", split, title))
    if trainer.is_global_zero:
        warning = warnings[0] if warnings else None
        md_path, json_path = write_results(results.per_split, _model_name(paths), out, warning)
        results.files.update({"results_md": md_path, "results_json": json_path})
    return results


def _split_config(config: RunConfig, trained: RunConfig | None, split: int) -> RunConfig:
    """The eval config for `split`, with the model shapes of the checkpoint's own run."""
    model = trained.model if trained else config.model
    if trained and trained.data.stride != config.data.stride:
        log.warning(
            "evaluating with data.stride=%d; the model was fine-tuned with %d",
            config.data.stride,
            trained.data.stride,
        )
    return dataclasses.replace(
        config, model=model, finetune=dataclasses.replace(config.finetune, split=split)
    )


def _write_split(scores, class_names: list[str], out: Path, split: int, title: str) -> dict[str, Path]:
    predictions, confusion_png = out / "predictions.jsonl", out / "confusion.png"
    write_predictions(scores, class_names, predictions)
    write_confusion_png(confusion_matrix(scores), class_names, confusion_png, title)
    return {f"split{split}_predictions": predictions, f"split{split}_confusion": confusion_png}


def _model_name(paths: dict[int, str]) -> str:
    first = next(iter(paths.values()))
    run = run_folder(first)
    return run.name if run else Path(first).stem

"""The quickstart's outputs: results table (markdown + JSON), loss curves, reconstruction grid,
confusion matrix, and where the offline W&B runs are."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pretrain.quickstart.flow import QuickstartResult, StageRecord

CSV_METRICS = Path("csv") / "metrics.csv"


def metric_series(run_dir: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) rows of one metric from the run's CSV log."""
    path = run_dir / CSV_METRICS
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [(int(row["step"]), float(row[name])) for row in csv.DictReader(handle) if row.get(name)]


LOSS_WINDOW = 0.1
"""Losses are reported as means over the first and the last 10% of a run's steps."""


def window_means(
    series: list[tuple[int, float]], fraction: float = LOSS_WINDOW
) -> tuple[float | None, float | None]:
    """(step, value) rows -> (mean over the first `fraction` of the steps, mean over the last):
    a loss falling over a smoothed window, not one batch against another (each has >= 1 row)."""
    if not series:
        return None, None
    first, last = series[0][0], series[-1][0]
    span = (last - first) * fraction
    head = [value for step, value in series if step <= first + span]
    tail = [value for step, value in series if step >= last - span]
    return mean(head), mean(tail)


def mean_metric(run_dir: Path, name: str) -> float | None:
    values = [value for _, value in metric_series(run_dir, name)]
    return mean(values) if values else None


def summarize(result: QuickstartResult) -> dict:
    losses = metric_series(result.pretrain.run_dir, "train/loss")
    by_kind: dict[str, list[float]] = {"pretrained": [], "scratch": []}
    shuffled: dict[str, list[float]] = {"pretrained": [], "scratch": []}
    runs = []
    for kind, seed, record in result.finetunes:
        top1 = record.metrics.get("test/top1")
        loss_first, loss_last = window_means(metric_series(record.run_dir, "train/loss"))
        if top1 is not None:
            by_kind[kind].append(top1)
        if record.metrics.get("test/top1_shuffled") is not None:
            shuffled[kind].append(record.metrics["test/top1_shuffled"])
        runs.append(
            {
                "init": kind,
                "seed": seed,
                "test_top1": top1,
                "test_top5": record.metrics.get("test/top5"),
                "test_top1_shuffled": record.metrics.get("test/top1_shuffled"),
                "test_mean_class_accuracy": record.metrics.get("test/mean_class_accuracy"),
                "loss_first_10pct": loss_first,
                "loss_last_10pct": loss_last,
                "clips_per_s": mean_metric(record.run_dir, "perf/clips_per_s"),
                "seconds": round(record.seconds, 1),
                "run_dir": str(record.run_dir),
            }
        )
    return {
        "pretrain": {
            "loss_first_10pct": window_means(losses)[0],
            "loss_last_10pct": window_means(losses)[1],
            "steps": result.pretrain.global_step,
            "clips_per_s": mean_metric(result.pretrain.run_dir, "perf/clips_per_s"),
            "seconds": round(result.pretrain.seconds, 1),
            "run_dir": str(result.pretrain.run_dir),
        },
        "finetune": runs,
        "backbone": result.backbone,
        "mean_test_top1": {kind: (mean(values) if values else None) for kind, values in by_kind.items()},
        "mean_test_top1_shuffled": {
            kind: (mean(values) if values else None) for kind, values in shuffled.items()
        },
        "wall_seconds": round(result.seconds, 1),
        "num_classes": result.num_classes,
        "plumbing_check": result.plumbing_check,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(summary: dict) -> str:
    pre, means = summary["pretrain"], summary["mean_test_top1"]
    top5 = not (summary.get("num_classes") or 6) <= 5  # always 100% with 5 classes or fewer
    shuffled = any(run.get("test_top1_shuffled") is not None for run in summary["finetune"])
    header = (
        ["fine-tuned from", "seed", "test top-1"]
        + ["test top-5"] * top5
        + ["top-1, frames shuffled"] * shuffled
        + ["train loss, first → last 10% of steps", "clips/s", "seconds"]
    )
    lines = [
        f"# Tubelet quickstart results (backbone {summary.get('backbone', 'vit')})",
        "",
        *plumbing_note(summary),
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
    ]
    for run in summary["finetune"]:
        cells = (
            [run["init"], run["seed"], _pct(run["test_top1"])]
            + [_pct(run["test_top5"])] * top5
            + [_pct(run.get("test_top1_shuffled"))] * shuffled
            + [f"{_num(run.get('loss_first_10pct'))} → {_num(run.get('loss_last_10pct'))}"]
        )
        lines.append(
            "| " + " | ".join(map(str, cells + [_num(run["clips_per_s"], 1), run["seconds"]])) + " |"
        )
    lines += [
        "",
        f"Mean test top-1: pretrained {_pct(means['pretrained'])}, scratch {_pct(means['scratch'])} "
        "(same fine-tuning budget).",
        "",
        *(
            [
                f"Frames shuffled (control): pretrained {_pct(summary['mean_test_top1_shuffled']['pretrained'])}, "
                f"scratch {_pct(summary['mean_test_top1_shuffled']['scratch'])}.",
                "",
            ]
            if any(summary.get("mean_test_top1_shuffled", {}).values())
            else []
        ),
        f"Pretraining: loss {_num(pre['loss_first_10pct'])} → {_num(pre['loss_last_10pct'])} (means over the "
        f"first and last 10% of {pre['steps']} steps), "
        f"{_num(pre['clips_per_s'], 1)} clips/s, {pre['seconds']} s.",
        "",
        f"Wall time: {summary['wall_seconds']} s.",
    ]
    return "\n".join(lines) + "\n"


def plumbing_note(summary: dict) -> list[str]:
    """The `--small` setting's plain words: what it checks, and what chance is."""
    if not summary.get("plumbing_check"):
        return []
    classes = summary.get("num_classes") or 4
    return [
        "**A plumbing check, not a result** (`--small`): every stage runs end to end on too few clips "
        f"and steps for pretraining to show; {100 / classes:.0f}% is chance for {classes} classes. "
        "Run without `--small` to see pretrained vs scratch.",
        "",
    ]


def plot_losses(result: QuickstartResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    pretrain_losses = metric_series(result.pretrain.run_dir, "train/loss")
    if pretrain_losses:  # a run shorter than logging.every_steps logs none
        left.plot(*zip(*pretrain_losses))
    left.set(title="pretraining (norm-pixel MSE)", xlabel="step", ylabel="loss")
    for kind, seed, record in result.finetunes:
        series = metric_series(record.run_dir, "train/loss")
        if series:
            xs, ys = zip(*series)
            right.plot(xs, ys, label=f"{kind} seed {seed}", linestyle="-" if kind == "pretrained" else "--")
    right.set(title="fine-tuning (cross-entropy)", xlabel="step", ylabel="loss")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _copy_latest(pattern_dir: Path, pattern: str, target: Path) -> Path | None:
    found = sorted(pattern_dir.glob(pattern))
    if not found:
        return None
    shutil.copyfile(found[-1], target)
    return target


def write_report(result: QuickstartResult) -> dict[str, Path]:
    summary = summarize(result)
    out = result.out
    files = {"results_md": out / "results.md", "results_json": out / "results.json"}
    files["results_md"].write_text(render_markdown(summary))
    files["results_json"].write_text(json.dumps(summary, indent=2) + "\n")
    files["loss_curves"] = plot_losses(result, out / "loss_curves.png")
    recon = _copy_latest(
        result.pretrain.run_dir / "reconstructions", "step-*.png", out / "reconstruction.png"
    )
    if recon:
        files["reconstruction"] = recon
    first_pretrained = next((rec for kind, _, rec in result.finetunes if kind == "pretrained"), None)
    if first_pretrained is not None:
        confusion = _copy_latest(
            first_pretrained.run_dir / "eval", "split*/confusion.png", out / "confusion.png"
        )
        if confusion:
            files["confusion"] = confusion
    return files


def wandb_sync_glob(result: QuickstartResult) -> str:
    """One `wandb sync` argument for every offline run of the quickstart (pretraining and each fine-tune)."""
    return str(result.out / "runs" / "*" / "wandb" / "offline-run-*")


def wandb_runs(result: QuickstartResult) -> list[Path]:
    """Offline W&B run folders (`wandb sync <folder>` uploads one)."""
    records: list[StageRecord] = [result.pretrain] + [rec for _, _, rec in result.finetunes]
    return [run for record in records for run in sorted((record.run_dir / "wandb").glob("offline-run-*"))]

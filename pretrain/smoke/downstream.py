"""Smoke steps 5-7: a short fine-tune from the pretraining export (ending in its own multi-view
test), `evaluate` of that checkpoint (must agree with the stage's test), and `predict` on raw test
videos (must agree with evaluate's per-video predictions)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pretrain.smoke.data import NUM_CLASSES, SmokeData
from pretrain.smoke.plan import SmokePlan
from pretrain.smoke.report import SmokeReport
from pretrain.smoke.stage_runs import (
    all_finite,
    loss_series,
    run_stage_clean,
    stage_config,
    throughput_figures,
)

# Mean-softmax probabilities of predict (fp32) against evaluate (the run's precision).
PROB_TOLERANCE = {"cpu": 1e-4, "cuda": 5e-2}


def finetune(out: Path, plan: SmokePlan, data: SmokeData, export_dir: Path, report: SmokeReport):
    overrides = [
        f"data.shards={data.shards}",
        f"finetune.init={export_dir}",
        f"trainer.max_steps={plan.finetune_steps}",
        f"trainer.checkpoint_every_steps={plan.finetune_steps}",
    ]
    config = stage_config("finetune/tiny", out, "finetune", plan, overrides)
    with report.timed("finetune"):
        result = run_stage_clean(config)
    info = json.loads((result.run_dir / "run.json").read_text())
    report.check(
        "finetune_init_from_export",
        str(info.get("init", {}).get("source")) == str(export_dir),
        f"init {info.get('init')}",
    )
    report.check(
        "finetune_steps",
        result.global_step == plan.finetune_steps and all_finite(loss_series(result.run_dir)),
        f"{result.global_step} of {plan.finetune_steps} steps",
    )
    losses = [value for _, value in loss_series(result.run_dir)]
    if len(losses) >= 40:  # long enough for the trend to beat the noise of single batches
        quarter = len(losses) // 4
        first, last = sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
        report.check(
            "finetune_loss_decreased", last < first, f"mean loss first quarter {first:.4f}, last {last:.4f}"
        )
    top1 = result.metrics.get("test/top1")
    report.check("finetune_test_ran", top1 is not None and 0.0 <= top1 <= 1.0, f"test/top1 {top1}")
    report.figures.update(throughput_figures(result.run_dir, "finetune", config.data.batch_size))
    report.figures["finetune_test_top1"] = top1
    return result


def evaluate(out: Path, plan: SmokePlan, data: SmokeData, tuned, report: SmokeReport) -> Path:
    from pretrain.evaluate.run import evaluate as run_evaluate

    config = stage_config("finetune/tiny", out, "evaluate", plan, [f"data.shards={data.shards}"])
    eval_dir = out / "evaluate"
    with report.timed("evaluate"):
        results = run_evaluate(config, str(tuned.last_checkpoint), splits=(1,), out_dir=eval_dir)
    metrics = results.per_split[1]
    report.check(
        "evaluate_counts_every_test_video",
        metrics.num_videos == len(data.test_videos),
        f"{metrics.num_videos} of {len(data.test_videos)} videos",
    )
    stage_top1 = tuned.metrics.get("test/top1")
    report.check(
        "evaluate_matches_stage_test",
        stage_top1 is not None
        and math.isclose(
            metrics.top1, stage_top1, abs_tol=1e-9 if not plan.on_cuda else 1.0 / metrics.num_videos
        ),
        f"evaluate top-1 {metrics.top1:.4f} vs the stage's test {stage_top1}",
    )
    report.figures["evaluate_top1"] = metrics.top1
    return eval_dir / "split1" / "predictions.jsonl"


def predict(plan: SmokePlan, data: SmokeData, tuned, predictions_file: Path, report: SmokeReport) -> None:
    from pretrain.data.shards.keys import key_for_path
    from pretrain.evaluate.predict import predict as run_predict

    videos = data.test_videos[: plan.predict_videos]
    with report.timed("predict"):
        answer = run_predict(tuned.last_checkpoint, [data.video_path(v) for v in videos], topk=NUM_CLASSES)
    report.check(
        "predict_every_video",
        len(answer.predictions) == len(videos) and not answer.failed,
        f"{len(answer.predictions)} predictions, failed: {[p.error for p in answer.failed]}",
    )
    evaluated = {}
    for line in predictions_file.read_text().splitlines():
        row = json.loads(line)
        evaluated[row["key"]] = {entry["class"]: entry["prob"] for entry in row["topk"]}
    worst = 0.0
    for relative, prediction in zip(videos, answer.predictions):
        theirs = evaluated.get(key_for_path(relative), {})
        worst = max([worst] + [abs(prob - theirs.get(name, -1.0)) for name, prob in prediction.topk])
    report.check(
        "predict_matches_evaluate",
        worst <= PROB_TOLERANCE[plan.device],
        f"max |p_predict - p_evaluate| {worst:.2g} over {len(videos)} videos",
    )
    report.figures["predict_clips_per_s"] = round(answer.clips_per_s, 3)

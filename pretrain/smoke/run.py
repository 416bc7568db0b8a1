"""`run_smoke`: every step in order, each asserting its outcome; `smoke.json` is written whatever
happens (a failed check, or an error inside a step, is recorded under the step's name)."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path

from pretrain.runtime.eta import StageEta, StageWork
from pretrain.smoke.plan import SmokePlan, backbone_overrides, wandb_mode
from pretrain.smoke.report import SmokeFailed, SmokeReport

log = logging.getLogger(__name__)


def run_smoke(out: Path, plan: SmokePlan) -> SmokeReport:
    """Run the smoke steps into `out`; raises SmokeFailed (after writing smoke.json) on a failed check."""
    out.mkdir(parents=True, exist_ok=True)
    report = SmokeReport(out, info=_describe(plan))
    started = time.perf_counter()
    step = "setup"
    eta = StageEta(smoke_work(plan), started=started)
    try:
        for step, run in _steps(out, plan, report):  # noqa: B007 (the except names the failed step)
            log.info("smoke: %s ...", eta.line())
            run()
            eta.finish()
    except SmokeFailed:
        raise
    except Exception as error:  # an error inside a step is that step's failed check
        report.checks[f"{step}_ran"] = False
        report.details[f"{step}_ran"] = f"{type(error).__name__}: {error}"
        raise SmokeFailed(f"smoke step {step!r} failed: {type(error).__name__}: {error}") from error
    finally:
        report.figures["wall_seconds"] = round(time.perf_counter() - started, 2)
        report.write()
    return report


def smoke_work(plan: SmokePlan) -> list[StageWork]:
    """The steps of `_steps` with their work: training in optimizer steps (the resumed run repeats
    the second half of pretraining), the rest in videos; the ETA prices each by its own kind."""
    from pretrain.smoke.data import NUM_CLASSES  # a video per class and group

    test_videos = NUM_CLASSES * len(plan.test_groups)
    videos = NUM_CLASSES * (len(plan.test_groups) + len(plan.train_groups))
    return [
        StageWork("kernels", "kernels", 0),
        StageWork("data", "data", videos, "videos"),
        StageWork("pretrain", "train", plan.pretrain_steps + plan.pretrain_steps - plan.resume_step),
        StageWork("finetune", "train", plan.finetune_steps),
        StageWork("evaluate", "evaluate", test_videos, "videos"),
        StageWork("predict", "predict", plan.predict_videos, "videos"),
        StageWork("wandb", "wandb", 0),
    ]


def _steps(out: Path, plan: SmokePlan, report: SmokeReport):
    """(name, thunk) pairs; each thunk reads what earlier ones left in `state`."""
    from pretrain.smoke import downstream
    from pretrain.smoke.data import prepare_data
    from pretrain.smoke.pretraining import pretrain_and_resume

    state: dict = {}
    yield "kernels", lambda: check_kernels(plan, report)
    yield "data", lambda: state.update(data=_timed(report, "data", prepare_data, out, plan, report))
    yield "pretrain", lambda: state.update(pre=pretrain_and_resume(out, plan, state["data"], report))
    yield (
        "finetune",
        lambda: state.update(
            tuned=downstream.finetune(out, plan, state["data"], state["pre"].export_dir, report)
        ),
    )
    yield (
        "evaluate",
        lambda: state.update(preds=downstream.evaluate(out, plan, state["data"], state["tuned"], report)),
    )
    yield "predict", lambda: downstream.predict(plan, state["data"], state["tuned"], state["preds"], report)
    yield "wandb", lambda: check_wandb(out, report)


def _timed(report: SmokeReport, name: str, function, *args):
    with report.timed(name):
        return function(*args)


def check_kernels(plan: SmokePlan, report: SmokeReport) -> None:
    """On CUDA: fused SDPA for the smoke model's shapes in bf16, and the stages' AdamW is fused."""
    if not plan.on_cuda:
        for name in ("sdpa_fused_kernel", "adamw_fused", "pretrain_fused_attention_only"):
            report.skip(name, "CUDA only")
        return
    import torch

    from pretrain.config import load_config
    from pretrain.models import build_pretraining_model
    from pretrain.smoke.kernels import fused_sdpa_step, stage_adamw_is_fused, videomae_inputs

    config = load_config("pretrain/tiny", backbone_overrides(plan.backbone))
    model = build_pretraining_model(config.model).cuda()
    error = fused_sdpa_step(model, videomae_inputs(model.spec, 2, config.mask.ratio, torch.device("cuda")))
    report.check("sdpa_fused_kernel", error is None, error or "flash / memory-efficient SDPA ran fwd + bwd")
    report.check("adamw_fused", stage_adamw_is_fused(model), "build_adamw over CUDA parameters")


def check_wandb(out: Path, report: SmokeReport) -> None:
    """Each stage left its W&B run (offline: RUN/wandb/offline-run-*; online: RUN/wandb/run-*)."""
    mode = report.info["wandb"]
    if mode == "disabled":
        report.skip("wandb_runs_written", "wandb is not installed or WANDB_MODE=disabled")
        return
    pattern = "offline-run-*" if mode == "offline" else "run-*"
    runs = sorted((out / "runs").glob(f"*/wandb/{pattern}"))
    report.check("wandb_runs_written", len(runs) >= 3, f"{len(runs)} {mode} W&B runs under {out / 'runs'}")
    report.figures["wandb_runs"] = [str(run) for run in runs]


def _describe(plan: SmokePlan) -> dict:
    import torch

    info = {
        "device": plan.device,
        "precision": plan.precision,
        "strategy": "deepspeed zero_stage=2 (1 process)",
        "backbone": plan.backbone,
        "wandb": wandb_mode(),
        "torch": torch.__version__,
        "host": platform.node(),
        "cpus": _cpu_count(),
        "plan": asdict(plan),
    }
    if plan.on_cuda:
        info["device_name"] = torch.cuda.get_device_name()
    return info


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

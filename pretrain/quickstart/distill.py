"""`tubelet quickstart --distill`: a small student from a bigger teacher, on the quickstart's data.

motion dataset + unlabeled corpus (the quickstart's) → pretrain the tiny VideoMAE (the quickstart's
stage) → pretrain a size-`teacher_size` VideoMAE on the same corpus and fine-tune it on the labels:
the teacher → per seed, the tiny student from the pretrained export twice, with the teacher
(`tubelet distill`, `distill.kind=logits`) and without (`tubelet finetune`), the same budget →
multi-view test → batch-1 CPU latency of teacher and student timed side by side → `distill.md` /
`distill.json`: one table, teacher and students.

A rerun in the same folder reuses every stage that already finished (its run folder holds the
checkpoint of its last step), so adding seeds costs only the new runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pretrain.errors import UserError
from pretrain.quickstart.flow import QuickstartPlan, StageRecord, prepare_data, stage_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillPlan:
    """Sizes of the distillation comparison (the CPU-sized defaults answer in tens of minutes)."""

    teacher_size: str = "s"
    """Named size of the teacher (the student is `tiny`)."""
    teacher_pretrain_epochs: int = 30
    """Epochs of the teacher's own MAE pretraining on the unlabeled corpus (batch 8, peak lr 1e-3);
    0 trains the teacher from scratch. Measured on the motion test: a size-s teacher fine-tuned 8
    epochs from scratch reached 50% and pulled the distilled student below the plain one (91.7 vs
    95.2%); pretrained, it reached 92.9% and the distilled student beat the plain one (100 vs 98.8%)."""
    teacher_epochs: int = 30
    """Teacher fine-tuning epochs."""
    teacher_base_lr: float = 0.05
    """Teacher base lr per 256 clips (peak 1.6e-3 at batch 8: a ViT-S wants less than tiny's 3.1e-3)."""
    teacher_layer_decay: float = 0.75
    """Teacher layer-wise lr decay (VideoMAE's ViT-S fine-tuning value)."""
    student_epochs: int = 12
    """Epochs of each student run, with and without the teacher (the quickstart's budget)."""
    seeds: tuple[int, ...] = (0,)
    """Student seeds."""
    num_sample: int = 2
    """Clips per video visit in every labeled run (the tiny recipes' 2)."""
    pretrain_epochs: int = 12
    """Epochs of the students' tiny MAE pretraining (the quickstart's stage)."""
    latency_reps: int = 20
    """Timed batch-1 forwards per row (rows alternating: teacher, student, its ONNX fp32 and int8)."""
    img_size: int = 64
    """Input size of teacher and students (the tiny recipes' 64; the export's position table is
    recomputed for another size)."""
    num_frames: int = 8
    """Frames per clip of teacher and students (the tiny recipes' 8)."""

    @property
    def clip(self) -> list[str]:
        """The input overrides every labeled run shares (teacher and student must match)."""
        return [f"model.img_size={self.img_size}", f"model.num_frames={self.num_frames}"]


@dataclass
class DistillResult:
    out: Path
    teacher: dict
    students: list[dict] = field(default_factory=list)
    light: dict = field(default_factory=dict)
    """`light_bench`'s result: latency, centre-clip top-1 and agreement per runtime row."""
    files: dict[str, Path] = field(default_factory=dict)


def finished(run_dir: Path) -> StageRecord | None:
    """A run that already finished here (its metrics are kept in distill_stage.json)."""
    record = run_dir / "distill_stage.json"
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    return StageRecord(
        saved["name"],
        run_dir,
        saved["seconds"],
        saved["metrics"],
        Path(saved["last_checkpoint"]),
        saved["global_step"],
    )


def run_or_reuse(name: str, recipe: str, out: Path, run_name: str, overrides: list[str]) -> StageRecord:
    found = finished(out / "runs" / run_name)
    if found is not None:
        log.info("quickstart --distill: %s already ran (%s), reused", name, found.run_dir)
        return found
    from pretrain.train.entry import run_stage

    log.info("quickstart --distill: %s ...", name)
    started = time.perf_counter()
    result = run_stage(stage_config(recipe, out, run_name, overrides))
    if result.stopped_by_signal:
        raise UserError(
            f"quickstart --distill: {name} was stopped at step {result.global_step}; rerun to go on"
        )
    metrics, seconds = dict(result.metrics), time.perf_counter() - started
    record = StageRecord(name, result.run_dir, seconds, metrics, result.last_checkpoint, result.global_step)
    (record.run_dir / "distill_stage.json").write_text(
        json.dumps(
            {**asdict(record), "run_dir": str(record.run_dir), "last_checkpoint": str(record.last_checkpoint)}
        )
    )
    return record


def run_distill_quickstart(
    out: Path,
    quick: QuickstartPlan | None = None,
    plan: DistillPlan | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> DistillResult:
    plan = plan or DistillPlan()
    quick = dataclasses.replace(quick or QuickstartPlan(), pretrain_epochs=plan.pretrain_epochs)
    announce = on_stage or (lambda message: log.info("quickstart --distill: %s", message))
    out.mkdir(parents=True, exist_ok=True)
    announce("writing synthetic videos and building shards")
    labeled, unlabeled = prepare_data(out, quick)
    announce("pretraining the tiny VideoMAE on the unlabeled corpus (the student's starting point)")
    export = pretrained_export(out, quick, unlabeled)
    announce(f"pretraining and fine-tuning the size-{plan.teacher_size} teacher")
    teacher = train_teacher(out, labeled, plan, pretrained_teacher(out, unlabeled, plan))
    students = []
    for seed in plan.seeds:
        for kind in ("distilled", "fine-tuned"):
            announce(f"tiny student {kind}, seed {seed}")
            record = train_student(out, labeled, export, plan, kind, seed, teacher.last_checkpoint)
            students.append({"kind": kind, "seed": seed, **_summary(record)})
    announce("timing batch-1 CPU latency, teacher and student side by side")
    result = DistillResult(out, _summary(teacher), students)
    held_out = split_test_videos(out / "data" / "motion")
    result.light = light_bench(
        teacher.last_checkpoint, Path(students[0]["checkpoint"]), held_out, plan.latency_reps
    )
    result.files = write_distill_report(result, plan)
    return result


def pretrained_export(out: Path, quick: QuickstartPlan, unlabeled: Path) -> Path:
    """The quickstart's tiny VideoMAE pretraining, exported: where every student starts."""
    from pretrain.weights import export_checkpoint

    pretrain = run_or_reuse(
        "pretrain",
        "pretrain/tiny",
        out,
        "pretrain",
        [
            f"data.shards={unlabeled}",
            "data.split=all",
            f"optim.epochs={quick.pretrain_epochs}",
            f"optim.warmup_epochs={max(1, quick.pretrain_epochs // 6)}",
            "logging.recon_every_steps=0",
        ],
    )
    export = out / "export-distill"
    if not (export / "config.json").is_file():
        export_checkpoint(pretrain.last_checkpoint, export)
    return export


def pretrained_teacher(out: Path, unlabeled: Path, plan: DistillPlan) -> Path | None:
    """The teacher's own VideoMAE pretraining on the unlabeled corpus (None: from scratch)."""
    if plan.teacher_pretrain_epochs <= 0:
        return None
    record = run_or_reuse(
        f"teacher {plan.teacher_size} pretraining",
        "pretrain/tiny",
        out,
        f"teacher-{plan.teacher_size}-pretrain",
        [
            f"data.shards={unlabeled}",
            "data.split=all",
            "data.batch_size=8",
            *plan.clip,
            f"model.size={plan.teacher_size}",
            "optim.base_lr=0.032",
            f"optim.epochs={plan.teacher_pretrain_epochs}",
            f"optim.warmup_epochs={max(1, plan.teacher_pretrain_epochs // 10)}",
            "logging.recon_every_steps=0",
        ],
    )
    return record.last_checkpoint


def train_teacher(out: Path, labeled: Path, plan: DistillPlan, init: Path | None) -> StageRecord:
    """The teacher, fine-tuned on the labels from its pretraining (or from scratch)."""
    return run_or_reuse(
        f"teacher {plan.teacher_size}",
        "finetune/tiny",
        out,
        f"teacher-{plan.teacher_size}",
        [
            f"data.shards={labeled}",
            f"data.num_sample={plan.num_sample}",
            *plan.clip,
            f"model.size={plan.teacher_size}",
            f"finetune.init={init or 'none'}",
            f"optim.base_lr={plan.teacher_base_lr}",
            f"optim.layer_decay={plan.teacher_layer_decay if init else 1.0}",
            f"optim.epochs={plan.teacher_epochs}",
            f"optim.warmup_epochs={max(1, plan.teacher_epochs // 6)}",
        ],
    )


def train_student(
    out: Path, labeled: Path, export: Path, plan: DistillPlan, kind: str, seed: int, teacher: Path | None
) -> StageRecord:
    """The tiny student from the pretrained export: `distilled` (with the teacher) or `fine-tuned`."""
    recipe, extra = (
        ("distill/tiny", [f"distill.teacher={teacher}"]) if kind == "distilled" else ("finetune/tiny", [])
    )
    name = f"student-{kind}-seed{seed}"
    overrides = [
        f"data.shards={labeled}",
        f"data.num_sample={plan.num_sample}",
        *plan.clip,
        f"finetune.init={export}",
        f"optim.epochs={plan.student_epochs}",
        f"optim.warmup_epochs={max(1, plan.student_epochs // 10)}",
        f"trainer.seed={seed}",
        *extra,
    ]
    return run_or_reuse(name, recipe, out, name, overrides)


def _summary(record: StageRecord) -> dict:
    return {
        "top1": record.metrics.get("test/top1"),
        "seconds": record.seconds,
        "steps": record.global_step,
        "checkpoint": str(record.last_checkpoint),
    }


def light_bench(teacher: Path, student: Path, held_out: list[Path], reps: int) -> dict:
    """`tubelet bench infer --teacher --student --held-out`'s rows: teacher fp32, student fp32 and
    the student's ONNX exports fp32 / int8 under onnxruntime, timed alternately on the CPU (batch-1
    latency), top-1 on the centre clip of each held-out video, agreement with the fp32 reference."""
    from pretrain.bench.infer_light import LightSettings, run_light_bench

    settings = LightSettings(str(teacher), str(student), tuple(map(str, held_out)), reps=reps, warmup=2)
    return run_light_bench(settings)


def split_test_videos(labeled_root: Path, split: int = 1) -> list[Path]:
    """The official test list of a UCF101-layout folder (the quickstart's motion dataset)."""
    listed = (labeled_root / "ucfTrainTestlist" / f"testlist0{split}.txt").read_text().split()
    return [labeled_root / "UCF-101" / line for line in listed if line.endswith(".avi")]


def _table_rows(result: DistillResult) -> list[tuple[str, str, list[float], str, str]]:
    """(model, runtime, multi-view top-1 per seed, centre-clip top-1, latency row) per table row."""
    rows = [("teacher", "pytorch fp32", [result.teacher["top1"]], "teacher fp32")]
    for kind in ("distilled", "fine-tuned"):
        top1s = [s["top1"] for s in result.students if s["kind"] == kind]
        rows.append((f"student {kind}", "pytorch fp32", top1s, "student fp32" if kind == "distilled" else ""))
    rows += [
        ("student distilled", "onnxruntime fp32", [], "student fp32 onnxruntime"),
        ("student distilled", "onnxruntime int8", [], "student int8 onnxruntime"),
    ]
    return rows


def write_distill_report(result: DistillResult, plan: DistillPlan) -> dict[str, Path]:
    """`distill.md` (the table) and `distill.json` (every number) in the output folder."""
    light = result.light.get("rows", {})
    teacher_ms = light.get("teacher fp32", {}).get("latency_ms")
    lines = [
        f"Distillation on the motion dataset: test top-1 multi-view (seeds {list(plan.seeds)}) and on the "
        "centre clip; batch-1 CPU latency (median, rows timed alternately in one process)",
        "",
        "| model | runtime | test top-1 (per seed) | mean | centre-clip top-1 | agrees with | batch-1 latency | vs teacher |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runtime, top1s, timed in _table_rows(result):
        row = light.get(timed, {})
        per_seed = ", ".join(f"{100 * t:.1f}%" for t in top1s) or "-"
        mean = f"{100 * statistics.mean(top1s):.1f}%" if top1s else "-"
        centre = f"{100 * row['top1']:.1f}%" if row.get("top1") is not None else "-"
        agrees = f"{row['agrees_with']} {100 * row['agreement']:.0f}%" if row.get("agrees_with") else "-"
        ms = f"{row['latency_ms']:.2f} ms" if row else "(same model as above)"
        ratio = f"{teacher_ms / row['latency_ms']:.1f}x" if row and teacher_ms else "-"
        lines.append(f"| {name} | {runtime} | {per_seed} | {mean} | {centre} | {agrees} | {ms} | {ratio} |")
    md, js = result.out / "distill.md", result.out / "distill.json"
    md.write_text("\n".join([*lines, ""]))
    summary = {
        "plan": asdict(plan),
        "teacher": result.teacher,
        "students": result.students,
        "light": result.light,
    }
    js.write_text(json.dumps(summary, indent=2))
    return {"distill_md": md, "distill_json": js}

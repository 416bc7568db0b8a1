"""`tubelet distill`: both kinds train a few real steps through the one stage runner, the loss is
the published one (checked against a hand computation on one batch), the run resumes, a teacher
that does not take the student's input is refused before any work, and the teacher stays frozen
and out of the student's checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from finetune_runs import InProcessRun, OneThread, motion_shards

from pretrain.cli import main
from pretrain.config import ConfigError, load_config
from pretrain.masking import tube_mask
from pretrain.models import arch_spec, build_classifier
from pretrain.models.arch import ArchSpec
from pretrain.models.patches import patchify
from pretrain.models.videomae import VideoMAE
from pretrain.train import distill_stage as distill_stage_module
from pretrain.train.distill_module import FeatureDistillModule, LogitDistillModule
from pretrain.train.entry import run_stage
from pretrain.train.teacher import FrozenTeacher
from pretrain.weights import export_checkpoint, read_weights
from pretrain.weights.export import read_safetensors, save_export
from pretrain.weights.layout import find_checkpoint
from pretrain.weights.safe_load import safe_torch_load

TORCH_LINEAR = torch.nn.functional.linear  # before any ZeRO-3 run of this module

CLASSES = ("MoveUpSlow", "MoveDownSlow")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with OneThread():
        yield


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return motion_shards(tmp_path_factory.mktemp("distill"), CLASSES, groups=(1, 2, 8, 9))


def _student_config(shards, out, name, *extra):
    return load_config(
        "distill/tiny",
        [
            f"data.shards={shards}",
            f"trainer.output_dir={out}",
            f"trainer.run_name={name}",
            "logging.wandb=disabled",
            "logging.every_steps=1",
            *extra,
        ],
        stage="distill",
    )


def _export(model, out, class_names=None):
    save_export(model, None, out, class_names=class_names)
    return out


def classifier_teacher(out, **model_overrides):
    """A tiny classifier teacher (2 classes) with full-scale head weights, so its logits differ."""
    config = load_config(
        "distill/tiny", [f"model.{k}={v}" for k, v in model_overrides.items()], stage="distill"
    )
    torch.manual_seed(3)
    model = build_classifier(config.model, len(CLASSES))
    with torch.no_grad():
        model.head.weight.normal_(0, 1.0)
    return _export(model, out, list(CLASSES))


def wide_pretrained_teacher(out):
    """A VideoMAE teacher 96 wide (the tiny student is 64 wide): the feature head must follow it."""
    tiny = arch_spec(load_config("distill/tiny", stage="distill").model)
    torch.manual_seed(4)
    return _export(VideoMAE(dataclasses.replace(tiny, dim=96, heads=2, mlp_dim=384)), out)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return classifier_teacher(tmp_path_factory.mktemp("teacher") / "export")


def _spy_teacher(monkeypatch) -> list[FrozenTeacher]:
    """The stage's teacher, kept for inspection (the real loader runs)."""
    seen: list[FrozenTeacher] = []
    real = distill_stage_module.load_teacher

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(distill_stage_module, "load_teacher", spy)
    return seen


def _checkpoint_keys(result) -> list[str]:
    state = safe_torch_load(find_checkpoint(result.last_checkpoint).state_path)["state_dict"]
    return sorted(state)


def test_logits_distillation_trains_resumes_and_keeps_the_teacher_frozen_and_out(
    shards, teacher, tmp_path, monkeypatch
):
    seen = _spy_teacher(monkeypatch)
    with InProcessRun():
        first = run_stage(
            _student_config(
                shards,
                tmp_path,
                "kd",
                f"distill.teacher={teacher}",
                "trainer.max_steps=2",
                "trainer.checkpoint_every_steps=2",
            )
        )
    metrics, weight = first.metrics, 0.5
    assert first.global_step == 2 and metrics["train/distill_loss"] > 0
    assert metrics["train/loss"] == pytest.approx(
        (1 - weight) * metrics["train/label_loss"] + weight * metrics["train/distill_loss"], rel=1e-5
    )
    frozen = seen[0].model
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    exported = read_safetensors(teacher / "model.safetensors")
    assert all(torch.equal(frozen.state_dict()[k].cpu(), v) for k, v in exported.items())
    keys = _checkpoint_keys(first)
    student_keys = sorted(
        f"model.{k}" for k in build_classifier(_student_config(shards, tmp_path, "x").model, 2).state_dict()
    )
    assert keys == student_keys  # the student's tensors, nothing of the teacher
    run_info = json.loads((first.run_dir / "run.json").read_text())
    assert run_info["teacher"]["source"] == str(teacher) and run_info["teacher"]["model"] == "VideoClassifier"
    assert "test/top1" in metrics  # the fine-tuning stage's multi-view test ran on the student
    assert read_weights(first.last_checkpoint).kind == "classifier"

    with InProcessRun():
        resumed = run_stage(
            _student_config(
                shards,
                tmp_path,
                "kd",
                f"distill.teacher={teacher}",
                "trainer.max_steps=4",
                "trainer.checkpoint_every_steps=2",
                "trainer.resume=auto",
            )
        )
    assert resumed.resumed_from == first.last_checkpoint and resumed.global_step == 4


def test_logits_loss_equals_the_hand_computed_one_on_one_batch(teacher, shards, tmp_path):
    config = _student_config(shards, tmp_path, "hand", "distill.temperature=2.0", "distill.weight=0.3")
    torch.manual_seed(0)
    student = build_classifier(config.model, 2).eval()
    frozen = FrozenTeacher(read_teacher(teacher), str(teacher))
    module = LogitDistillModule(config, student, list(CLASSES), 1, frozen)
    video = torch.randn(3, 3, 8, 64, 64)
    label = torch.tensor([0, 1, 1])
    loss, _ = module._loss(video, label, None)

    s, t = student(video).double(), frozen.model(video).double()  # (3, 2)
    smoothing, temperature, weight = 0.1, 2.0, 0.3
    log_p = s - s.logsumexp(-1, keepdim=True)
    soft_labels = torch.full_like(s, smoothing / 2) + (1 - smoothing) * torch.nn.functional.one_hot(label, 2)
    label_loss = -(soft_labels * log_p).sum(-1).mean()
    p_t = torch.softmax(t / temperature, -1)
    q_s = torch.softmax(s / temperature, -1)
    kl = (p_t * (p_t.log() - q_s.log())).sum(-1).mean() * temperature**2
    assert kl > 1e-3
    assert float(loss) == pytest.approx(float((1 - weight) * label_loss + weight * kl), rel=1e-5)


def read_teacher(path):
    from pretrain.weights import from_pretrained

    return from_pretrained(path)


def test_feature_distillation_trains_with_a_head_of_the_teachers_width(shards, tmp_path, monkeypatch):
    teacher = wide_pretrained_teacher(tmp_path / "wide")
    seen = _spy_teacher(monkeypatch)
    with InProcessRun():
        result = run_stage(
            _student_config(
                shards,
                tmp_path,
                "mvd",
                "distill.kind=features",
                f"distill.teacher={teacher}",
                "distill.decoder_depth=2",
                "data.split=train",
                "trainer.max_steps=2",
                "trainer.checkpoint_every_steps=2",
            )
        )
    assert result.global_step == 2 and math.isfinite(result.metrics["train/loss"])
    keys = _checkpoint_keys(result)
    assert "model.decoder.head.weight" in keys and "model.decoder.blocks.1.norm1.weight" in keys
    assert not any(k.startswith(("teacher", "model.teacher")) for k in keys)
    state = safe_torch_load(find_checkpoint(result.last_checkpoint).state_path)["state_dict"]
    assert tuple(state["model.decoder.head.weight"].shape) == (96, 32)  # teacher width x decoder width
    frozen = seen[0].model
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    exported = read_safetensors(teacher / "model.safetensors")
    assert all(torch.equal(frozen.state_dict()[k].cpu(), v) for k, v in exported.items())
    weights = read_weights(result.last_checkpoint)  # the student's encoder: what fine-tuning takes
    assert weights.kind == "encoder" and all(k.startswith("encoder.") for k in weights.state)
    encoder = read_teacher(export_checkpoint(result.last_checkpoint, tmp_path / "student-export"))
    assert encoder.spec.dim == 64 and sorted(f"encoder.{k}" for k in encoder.state_dict()) == sorted(
        weights.state
    )


def test_feature_loss_equals_smooth_l1_to_the_teachers_masked_tokens(shards, tmp_path):
    teacher_path = wide_pretrained_teacher(tmp_path / "wide")
    config = _student_config(
        shards, tmp_path, "hand", "distill.kind=features", f"distill.teacher={teacher_path}"
    )
    stage = distill_stage_module.feature_distill_stage(config)
    torch.manual_seed(0)
    student = stage.build_model()
    frozen = FrozenTeacher(read_teacher(teacher_path), str(teacher_path))
    module = FeatureDistillModule(config, student, 1, frozen)
    video = torch.randn(2, 3, 8, 64, 64)
    spec: ArchSpec = student.spec
    mask = torch.stack([tube_mask(spec.grid, 0.75, torch.Generator().manual_seed(i)) for i in range(2)])
    output = module(video, mask)

    targets = frozen.model.encoder(patchify(video, 2, 16))  # (2, N, 96), the teacher's last layer
    hidden = targets[mask].view(2, -1, 96)  # masked tokens in ascending order per clip
    diff = (output.pred_channel_first - hidden).abs()
    smooth_l1 = torch.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert float(output.loss) == pytest.approx(float(smooth_l1), rel=1e-5)


def test_a_teacher_with_other_inputs_is_refused_naming_both_values(shards, tmp_path, capsys):
    teacher = classifier_teacher(tmp_path / "t4", num_frames=4, pixel_mean="[0.5,0.5,0.5]")
    code = main(
        [
            "distill",
            "tiny",
            f"data.shards={shards}",
            f"distill.teacher={teacher}",
            f"trainer.output_dir={tmp_path}",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"tubelet: config error: distill.teacher='{teacher}' does not take the student's input: "
        "frames: teacher 4 vs student 8 (model.num_frames); normalization mean: teacher [0.5, 0.5, 0.5] vs "
        "student [0.485, 0.456, 0.406] (model.pixel_mean)"
    )
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("distill-*"))  # no run started


def test_feature_distillation_refuses_another_token_grid(shards, tmp_path):
    tiny = arch_spec(load_config("distill/tiny", stage="distill").model)
    teacher = _export(VideoMAE(dataclasses.replace(tiny, patch_size=8)), tmp_path / "p8")
    config = _student_config(shards, tmp_path, "grid", "distill.kind=features", f"distill.teacher={teacher}")
    with pytest.raises(ConfigError) as refused:
        distill_stage_module.distill_stage(config)
    assert str(refused.value).endswith("patch size: teacher 8 vs student 16 (model.patch_size)")


def test_quickstart_distill_table_has_teacher_students_and_int8_with_latency_ratios(tmp_path):
    from pretrain.quickstart.distill import DistillPlan, DistillResult, write_distill_report

    students = [
        {"kind": kind, "seed": seed, "top1": top1}
        for kind, seed, top1 in (
            ("distilled", 0, 1.0),
            ("fine-tuned", 0, 0.75),
            ("distilled", 1, 0.5),
            ("fine-tuned", 1, 0.25),
        )
    ]
    row = lambda ms, top1, ref=None, agree=None: {  # noqa: E731
        "latency_ms": ms,
        "top1": top1,
        "agrees_with": ref,
        "agreement": agree,
    }
    light = {
        "rows": {
            "teacher fp32": row(8.0, 0.9),
            "student fp32": row(2.0, 0.8, "teacher fp32", 0.75),
            "student fp32 onnxruntime": row(1.0, 0.8, "student fp32", 1.0),
            "student int8 onnxruntime": row(0.5, 0.7, "student fp32", 0.9),
        }
    }
    result = DistillResult(tmp_path, {"top1": 0.9}, students, light)
    files = write_distill_report(result, DistillPlan(seeds=(0, 1)))
    table = [line for line in files["distill_md"].read_text().splitlines() if line.startswith("| ")]
    assert table[1:] == [
        "| teacher | pytorch fp32 | 90.0% | 90.0% | 90.0% | - | 8.00 ms | 1.0x |",
        "| student distilled | pytorch fp32 | 100.0%, 50.0% | 75.0% | 80.0% | teacher fp32 75% | 2.00 ms | 4.0x |",
        "| student fine-tuned | pytorch fp32 | 75.0%, 25.0% | 50.0% | - | - | (same model as above) | - |",
        "| student distilled | onnxruntime fp32 | - | - | 80.0% | student fp32 100% | 1.00 ms | 8.0x |",
        "| student distilled | onnxruntime int8 | - | - | 70.0% | student fp32 90% | 0.50 ms | 16.0x |",
    ]
    assert json.loads(files["distill_json"].read_text())["light"] == light


@pytest.mark.slow
def test_feature_distillation_under_zero3_keeps_the_teacher_whole_and_out(shards, tmp_path):
    teacher = wide_pretrained_teacher(tmp_path / "wide")
    with InProcessRun():
        result = run_stage(
            _student_config(
                shards,
                tmp_path,
                "mvd-zero3",
                "distill.kind=features",
                f"distill.teacher={teacher}",
                "strategy.name=deepspeed",
                "strategy.zero_stage=3",
                "trainer.max_steps=2",
                "trainer.checkpoint_every_steps=2",
            )
        )
    assert (result.last_checkpoint / "state").is_dir() and result.global_step == 2  # ZeRO shards
    assert torch.nn.functional.linear is TORCH_LINEAR  # ZeRO-3's process-wide swap is undone at teardown
    weights = read_weights(result.last_checkpoint)  # consolidated: the student's encoder only
    student = VideoMAE(arch_spec(load_config("distill/tiny", stage="distill").model)).encoder
    assert weights.kind == "encoder"
    assert {k: tuple(v.shape) for k, v in weights.state.items()} == {
        f"encoder.{k}": tuple(v.shape) for k, v in student.state_dict().items()
    }

"""The distillation stage (`tubelet distill`): a frozen teacher (`distill.teacher`) and a student
trained by the one stage runner like any other stage (ZeRO, Ray, resume, W&B, checkpoints, export).

- `distill.kind=logits`: the fine-tuning stage (labeled shards, `finetune.*` augmentation and
  `finetune.init` for the student's starting weights, the multi-view test at the end) with the
  KL term to the teacher's logits.
- `distill.kind=features`: the pretraining stage (unlabeled shards, `mask.*`) whose student
  (`FeatureStudent`) regresses the teacher's features of the masked tokens; its checkpoints read
  as the student's encoder (`finetune.init=` takes them).

The teacher is read and checked against the student (frames, image size, normalization, and for
features the token grid) when the stage is described: before the model, data or Lightning start.
"""

from __future__ import annotations

import dataclasses

from pretrain.config import RunConfig
from pretrain.models import arch_spec
from pretrain.models.feature_distill import FeatureStudent
from pretrain.train.distill_module import FeatureDistillModule, LogitDistillModule
from pretrain.train.finetune_stage import finetune_stage
from pretrain.train.pretrain_stage import pretrain_stage
from pretrain.train.stage import Stage
from pretrain.train.teacher import FrozenTeacher, load_teacher


def distill_stage(config: RunConfig) -> Stage:
    if config.distill.kind == "logits":
        return logit_distill_stage(config)
    return feature_distill_stage(config)


def logit_distill_stage(config: RunConfig) -> Stage:
    stage = finetune_stage(config)
    class_names = stage.run_info["class_names"]
    teacher = load_teacher(config, num_classes=len(class_names))
    return dataclasses.replace(
        stage,
        build_module=lambda model, steps_per_epoch: LogitDistillModule(
            config, model, class_names, steps_per_epoch, teacher
        ),
        run_info={**stage.run_info, "teacher": teacher_info(teacher)},
    )


def feature_distill_stage(config: RunConfig) -> Stage:
    teacher = load_teacher(config)
    stage = pretrain_stage(config)

    def build_model() -> FeatureStudent:
        spec = arch_spec(config.model)
        if config.distill.decoder_depth is not None:
            spec = dataclasses.replace(spec, decoder_depth=config.distill.decoder_depth)
        model = FeatureStudent(
            spec, teacher.width, config.model.drop_path, grad_checkpointing=config.model.grad_checkpointing
        )
        if config.trainer.compile:
            model.compile()
        return model

    return dataclasses.replace(
        stage,
        build_model=build_model,
        build_module=lambda model, steps_per_epoch: FeatureDistillModule(
            config, model, steps_per_epoch, teacher
        ),
        callbacks=lambda model, run_dir: [],  # no pixel reconstructions: the student predicts features
        run_info={**stage.run_info, "teacher": teacher_info(teacher)},
    )


def teacher_info(teacher: FrozenTeacher) -> dict:
    """What run.json records about the teacher."""
    return {
        "source": teacher.source,
        "model": type(teacher.model).__name__,
        "backbone": teacher.spec.backbone,
        "dim": teacher.spec.dim,
        "depth": teacher.spec.depth,
        "parameters": sum(p.numel() for p in teacher.model.parameters()),
    }

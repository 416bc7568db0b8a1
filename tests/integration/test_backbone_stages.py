"""TimeSformer and ViViT through every stage, one short real run per backbone: pretraining (tube
mask, V2 decoder mask, reconstructions), export (the backbone recorded), fine-tuning from the
pretraining checkpoint with its multi-view test, linear-probe model building and `tubelet predict`."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_runs import InProcessRun, OneThread, motion_shards, short_finetune

from pretrain.config import load_config
from pretrain.data.generated.motion_dataset import MOTIONS, motion_frames
from pretrain.data.video.write import write_video
from pretrain.evaluate.predict import predict
from pretrain.models import build_finetune_model
from pretrain.train.entry import run_stage
from pretrain.weights import build_model, export_checkpoint, load_weights

CLASSES = ("MoveUpSlow", "MoveDownSlow")
STEPS = 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return motion_shards(tmp_path_factory.mktemp("motion"), CLASSES, groups=(1, 8))


@pytest.fixture(scope="module", params=["timesformer", "vivit"])
def staged(request, shards, tmp_path_factory):
    backbone = request.param
    root = tmp_path_factory.mktemp(backbone)
    config = load_config(
        "pretrain/tiny",
        [
            f"data.shards={shards}",
            f"trainer.max_steps={STEPS}",
            f"trainer.checkpoint_every_steps={STEPS}",
            f"trainer.output_dir={root}",
            "trainer.run_name=pre",
            "logging.wandb=disabled",
            "logging.every_steps=1",
            "logging.recon_every_steps=1",
            "mask.decoder_ratio=0.5",
            f"model.backbone={backbone}",
        ],
        stage="pretrain",
    )
    with InProcessRun():
        pretrained = run_stage(config)
    export_checkpoint(pretrained.last_checkpoint, root / "export")
    finetuned = short_finetune(
        shards,
        root / "runs",
        "ft",
        f"model.backbone={backbone}",
        f"finetune.init={pretrained.last_checkpoint}",
    )
    return backbone, root, pretrained, finetuned


def test_pretraining_runs_and_writes_reconstructions(staged):
    backbone, _, pretrained, _ = staged
    assert pretrained.last_checkpoint.name == f"step-{STEPS:08d}"
    assert (pretrained.run_dir / "reconstructions" / f"step-{STEPS:08d}.png").is_file()
    assert f"backbone: {backbone}" in (pretrained.run_dir / "config.yaml").read_text()


def test_export_records_the_backbone_and_rebuilds_the_model(staged):
    backbone, root, _, _ = staged
    config = json.loads((root / "export" / "config.json").read_text())
    assert config["arch"]["backbone"] == backbone
    state, model_config = load_weights(root / "export")
    model = build_model(state, model_config)
    assert (
        type(model.encoder).__name__
        == {"timesformer": "TimeSformerEncoder", "vivit": "FactorisedEncoder"}[backbone]
    )
    assert "encoder.time_embed" in state


def test_finetuning_from_the_pretraining_checkpoint_tests_multi_view(staged):
    backbone, root, pretrained, finetuned = staged
    assert finetuned.metrics["test/num_videos"] == len(CLASSES) * 1  # split 1 tests group 1
    assert 0.0 <= finetuned.metrics["test/top1"] <= 1.0
    info = json.loads((finetuned.run_dir / "run.json").read_text())
    assert info["init"]["format"] == f"stage checkpoint (step {STEPS})"
    assert info["init"]["skipped"] == ["norm.bias", "norm.weight"]  # fc_norm replaces the final norm


def test_linear_probe_and_predict(staged, tmp_path):
    backbone, _, _, finetuned = staged
    config = load_config(
        "finetune/tiny", [f"model.backbone={backbone}", "finetune.mode=linear_probe"], stage="finetune"
    )
    probe = build_finetune_model(config, num_classes=2)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.1.weight", "head.1.bias"]
    assert probe.eval()(torch.randn(2, 3, 8, 64, 64)).shape == (2, 2)
    video = write_video(tmp_path / "up.avi", motion_frames(list(MOTIONS), num_frames=40)(0, 1000))
    with OneThread():
        report = predict(finetuned.last_checkpoint, [video], topk=2)
    assert not report.failed and {name for name, _ in report.predictions[0].topk} == set(CLASSES)

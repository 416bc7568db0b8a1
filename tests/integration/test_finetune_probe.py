"""`finetune.mode=linear_probe`: the encoder stays exactly as initialised (frozen, eval mode), only a
BatchNorm (affine=False) + linear head trains, and the result is evaluated like any checkpoint."""

from __future__ import annotations

import torch
from finetune_runs import motion_shards, short_finetune
from safetensors.torch import load_file

from pretrain.config import load_config
from pretrain.models import build_pretraining_model
from pretrain.weights import save_export


def test_linear_probe_trains_only_the_batchnormed_head(tmp_path):
    shards = motion_shards(tmp_path, ("MoveUpSlow", "MoveDownSlow"), groups=(1, 8, 22))
    config = load_config("pretrain/tiny", stage="pretrain")
    torch.manual_seed(3)
    save_export(build_pretraining_model(config.model), None, tmp_path / "export")
    exported = load_file(str(tmp_path / "export" / "model.safetensors"))

    result = short_finetune(
        shards,
        tmp_path / "runs",
        "probe",
        "finetune.mode=linear_probe",
        f"finetune.init={tmp_path / 'export'}",
        "model.drop_path=0.1",
    )
    state = torch.load(result.last_checkpoint / "state.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    encoder = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.encoder.")}
    assert len(encoder) > 10 and set(encoder) <= set(exported)
    assert all(torch.equal(v, exported[k]) for k, v in encoder.items())  # frozen: exactly as loaded
    assert int(state["model.head.0.num_batches_tracked"]) == 3  # BatchNorm statistics updated
    assert "model.head.0.weight" not in state  # affine=False
    assert torch.equal(state["model.fc_norm.weight"], torch.ones(64))  # frozen at its initial value
    assert result.metrics["test/num_videos"] == 2  # the probe is evaluated like any checkpoint
    logged = (result.run_dir / "csv" / "metrics.csv").read_text()
    assert "test/top1" in logged.splitlines()[0]  # the test metrics reach the run's loggers

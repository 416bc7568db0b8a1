"""Config values that used to get through: each now fails at load with one message naming the key."""

from __future__ import annotations

import pytest

from pretrain.config import ConfigError, load_config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.patch_size=0"], "model.patch_size=0 must be > 0"),
        (["model.patch_size=-16"], "model.patch_size=-16 must be > 0"),
        (["optim.base_lr=0"], "optim.base_lr=0.0 must be a finite number > 0"),
        (["optim.base_lr=-1e-4"], "optim.base_lr=-0.0001 must be a finite number > 0"),
        (["optim.base_lr=inf"], "optim.base_lr=inf must be a finite number > 0"),
        (["optim.base_lr=nan"], "optim.base_lr=nan must be a finite number > 0"),
        (["optim.min_lr=nan"], "optim.min_lr=nan must be a finite number >= 0"),
        (
            ["optim.min_lr=1e-3"],
            "optim.min_lr=0.001 is above the peak lr 2.34e-05 (optim.base_lr=0.0015 x global "
            "batch 4 / 256); lower optim.min_lr",
        ),
        (["cluster.gpus_per_worker=-1"], "cluster.gpus_per_worker=-1.0 must be >= 0"),
        (
            ["cluster.use_gpu=true", "cluster.gpus_per_worker=0"],
            "cluster.use_gpu=true needs cluster.gpus_per_worker > 0 (got 0.0)",
        ),
        (["logging.device_peak_tflops=-3"], "logging.device_peak_tflops=-3.0 must be a finite number > 0"),
        (["logging.device_peak_tflops=0"], "logging.device_peak_tflops=0.0 must be a finite number > 0"),
    ],
)
def test_a_value_that_cannot_run_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config("pretrain/tiny", overrides)
    assert str(raised.value) == message


def test_the_peak_lr_follows_the_global_batch():
    """min_lr is compared with base_lr x global batch / 256, so more devices make room for it."""
    with pytest.raises(ConfigError, match="above the peak lr"):
        load_config("pretrain/tiny", ["optim.min_lr=5e-5"])
    assert load_config("pretrain/tiny", ["optim.min_lr=5e-5", "trainer.devices=4"]).lr == pytest.approx(
        9.375e-5
    )


@pytest.mark.parametrize("resume", ["autoo", "runs/nowhere/checkpoints/last"])
def test_resume_must_be_auto_none_or_an_existing_path(resume, tmp_path):
    config = load_config("pretrain/tiny", [f"trainer.resume={resume}", f"data.shards={tmp_path}"])  # loads
    with pytest.raises(ConfigError) as raised:
        config.check_before_run()
    assert str(raised.value) == f"trainer.resume={resume!r} is neither auto, none nor an existing path"


@pytest.mark.parametrize("resume", ["auto", "none", "{tmp}", "s3://bucket/run/checkpoints/last"])
def test_resume_values_that_are_fine(resume, tmp_path):
    resume = resume.replace("{tmp}", str(tmp_path))
    load_config("pretrain/tiny", [f"trainer.resume={resume}", f"data.shards={tmp_path}"]).check_before_run()


def test_a_saved_config_with_a_vanished_resume_path_still_loads(tmp_path):
    """Checkpoint rotation deletes the step a run resumed from; its saved config must still load."""
    from pretrain.config import config_from_dict, config_to_dict

    saved = config_to_dict(load_config("pretrain/tiny", [f"trainer.resume={tmp_path}/gone"]))
    assert config_from_dict(saved).trainer.resume == f"{tmp_path}/gone"


def test_shards_are_required_to_run_but_not_to_load():
    config = load_config("pretrain/tiny")
    with pytest.raises(ConfigError, match=r"^data.shards is required: the folder holding manifest.json"):
        config.check_before_run()

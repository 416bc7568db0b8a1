"""`tubelet smoke --small` on CPU: every check passes and lands in smoke.json with the figures; a
failed check exits 1 naming it; bad flags exit 2 before any work."""

import json

import pytest

from pretrain.cli import main

EXPECTED_CHECKS = {
    "videos_written",
    "shards_built",
    "shards_verified",
    "split1_test_videos",
    "pretrain_steps",
    "pretrain_loss_finite",
    "checkpoint_deepspeed_zero2",
    "reconstruction_written",
    "checkpoint_mid_run",
    "resume_reaches_end",
    "resume_continues_at_step",
    "resume_loss_equal",
    "export_matches_checkpoint",
    "resume_weights_equal",
    "finetune_init_from_export",
    "finetune_steps",
    "finetune_test_ran",
    "evaluate_counts_every_test_video",
    "evaluate_matches_stage_test",
    "predict_every_video",
    "predict_matches_evaluate",
    "wandb_runs_written",
    "pretrain_precision",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert main(["smoke", "--small", "--device", "cpu", "--out", str(out)]) == 0
    return json.loads((out / "smoke.json").read_text()), out


@pytest.mark.slow
def test_every_check_passes_and_is_recorded(smoke):
    report, _ = smoke
    assert report["passed"] is True
    assert set(report["checks"]) == EXPECTED_CHECKS
    assert all(report["checks"].values())
    assert set(report["info"]["skipped"]) == {
        "sdpa_fused_kernel",
        "adamw_fused",
        "pretrain_fused_attention_only",
    }
    assert report["info"]["precision"] == "32-true" and report["info"]["wandb"] == "offline"


@pytest.mark.slow
def test_figures_hold_throughput_memory_and_step_times(smoke):
    figures = smoke[0]["figures"]
    assert figures["pretrain_clips_per_s"] > 0 and figures["pretrain_tflops_per_s"] > 0
    assert figures["pretrain_peak_host_rss_gb"] > 0.1
    assert figures["pretrain_mfu"] is None  # no known peak for a CPU
    assert figures["pretrain_seconds_per_step"] > 0
    assert set(figures["step_seconds"]) == {
        "data",
        "pretrain",
        "resume",
        "export",
        "finetune",
        "evaluate",
        "predict",
    }
    assert 0 < figures["wall_seconds"] < 480
    assert 0.0 <= figures["evaluate_top1"] == figures["finetune_test_top1"] <= 1.0


@pytest.mark.slow
def test_resumed_run_equals_the_uninterrupted_one(smoke):
    report, out = smoke
    assert report["details"]["resume_weights_equal"].startswith("max |Δw| 0 ")
    assert (out / "export" / "pretrain" / "model.safetensors").is_file()
    assert (out / "export" / "pretrain-resumed" / "model.safetensors").is_file()


def test_a_failed_check_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    import pretrain.smoke.data as smoke_data

    monkeypatch.setattr(smoke_data, "NUM_CLASSES", 5)  # the motion dataset has 4: the count check fails
    assert main(["smoke", "--small", "--device", "cpu", "--out", str(tmp_path)]) == 1
    assert "smoke check 'videos_written' failed" in capsys.readouterr().err
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["passed"] is False and report["checks"] == {"videos_written": False}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backbone", "resnet"], "--backbone 'resnet' is not allowed"),
        (["--device", "cuda"], "--device cuda but CUDA is not available"),
    ],
)
def test_bad_flags_exit_2_before_any_work(tmp_path, capsys, argv, message):
    import torch

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["smoke", "--out", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

"""`tubelet pretrain` / `tubelet export` user mistakes: exit codes and messages, before any work."""

from __future__ import annotations

import pytest

from pretrain.cli import main


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.devics=2"], "unknown config key 'trainer.devics'; did you mean trainer.devices"),
        (["strategy.zero_stage=2"], "need strategy.name=deepspeed"),
        (
            ["strategy.name=deepspeed", "strategy.zero_stage=2", "strategy.offload_params=cpu"],
            "offload_params='cpu' needs strategy.zero_stage=3",
        ),
        ([], "data.shards is required"),
    ],
)
def test_config_mistakes_exit_2_naming_the_key(overrides, message, tmp_path, capsys):
    assert main(["pretrain", "tiny", f"trainer.output_dir={tmp_path}", *overrides]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was started or written


def test_missing_shards_exit_1_naming_the_path(tmp_path, capsys):
    missing = tmp_path / "no-shards"
    assert main(["pretrain", "tiny", f"data.shards={missing}", f"trainer.output_dir={tmp_path}/runs"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_export_of_something_that_is_not_a_checkpoint_exits_1(tmp_path, capsys):
    (tmp_path / "step-00000005").mkdir()
    assert main(["export", str(tmp_path / "step-00000005"), str(tmp_path / "out")]) == 1
    assert "meta.json is missing (an interrupted save?)" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()

"""Where `tubelet evaluate` writes by default, and the checkpoint pattern its split error suggests."""

from pathlib import Path

import pytest

from pretrain.config import ConfigError, load_config
from pretrain.evaluate.run import checkpoints_per_split, default_out_dir


def make_run(root: Path, name: str) -> Path:
    (root / "runs" / name / "checkpoints" / "step-00000010").mkdir(parents=True)
    (root / "runs" / name / "checkpoints" / "last").symlink_to("step-00000010")
    return root / "runs" / name


def test_results_go_beside_the_checkpoints_run_not_the_working_directory(tmp_path):
    run = make_run(tmp_path, "ft")
    config = load_config("finetune/tiny")
    for checkpoint in (run / "checkpoints" / "last", run):  # a checkpoint folder, or the run itself
        assert default_out_dir(config, {1: str(checkpoint)}, False) == tmp_path / "runs" / "ft-evaluate"
    three = {split: str(run / "checkpoints" / "last") for split in (1, 2, 3)}
    assert default_out_dir(config, three, True) == tmp_path / "runs" / "ft-evaluate-splits-1-2-3-shuffled"
    export = tmp_path / "export" / "ucf"
    assert default_out_dir(config, {1: str(export)}, False) == tmp_path / "export" / "ucf-evaluate"
    named = load_config("finetune/tiny", [f"trainer.output_dir={tmp_path}/o", "trainer.run_name=ev"])
    assert default_out_dir(named, {1: str(run)}, False) == tmp_path / "o" / "ev"


def test_one_checkpoint_for_three_splits_suggests_a_pattern_that_exists(tmp_path):
    runs = [make_run(tmp_path, f"ucf_s{split}") for split in (1, 2, 3)]
    with pytest.raises(ConfigError) as refused:
        checkpoints_per_split(str(runs[0] / "checkpoints" / "last"), (1, 2, 3))
    pattern = f"{tmp_path}/runs/ucf_s{{split}}/checkpoints/last"
    assert f"e.g. ckpt={pattern} (each run's checkpoints/last folder) or ckpt=A,B,C" in str(refused.value)
    assert all(Path(path).is_dir() for path in checkpoints_per_split(pattern, (1, 2, 3)).values())
    with pytest.raises(ConfigError, match=r"e\.g\. ckpt=runs/ucf_split\{split\}/checkpoints/last "):
        checkpoints_per_split("export/ucf", (1, 2))

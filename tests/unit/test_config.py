"""The config schema: recipes load, overrides merge, bad configs fail early with a named key."""

from pathlib import Path

import pytest
import yaml

from pretrain.cli import main
from pretrain.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    list_recipes,
    load_config,
    resolve_recipe,
)


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_shipped_recipe_loads_and_round_trips(recipe):
    config = load_config(recipe)
    assert isinstance(config, RunConfig)
    assert config.stage == recipe.split("/")[0]
    assert config_from_dict(config_to_dict(config)) == config


def test_at_least_the_tiny_recipe_ships():
    assert "pretrain/tiny" in list_recipes()


def test_overrides_merge_onto_the_recipe_with_types():
    config = load_config("pretrain/tiny", ["optim.base_lr=3e-4", "data.batch_size=2", "model.size=s"])
    assert config.optim.base_lr == pytest.approx(3e-4)
    assert config.data.batch_size == 2
    assert config.model.size == "s"
    assert config.model.num_frames == 8  # untouched recipe value survives


def test_derived_values_follow_the_published_rules():
    config = load_config(None, ["trainer.devices=8", "data.batch_size=32", "optim.base_lr=1.5e-4"])
    assert config.global_batch == 256
    assert config.lr == pytest.approx(1.5e-4)
    assert config.model.grid == (8, 14, 14)
    assert config.model.num_tokens == 1568
    g = load_config(None, ["model.size=g"])
    assert g.model.effective_patch_size == 14 and g.model.grid == (8, 16, 16)


def test_ray_launcher_counts_workers_not_devices():
    # A multi-node recipe runs on Ray by changing only cluster.* settings.
    config = load_config(
        None,
        [
            "trainer.devices=8",
            "trainer.num_nodes=8",
            "cluster.launcher=ray",
            "cluster.num_workers=16",
            "data.batch_size=4",
        ],
    )
    assert config.world_size == 16 and config.global_batch == 64


def test_recipe_addressable_by_name_path_and_basename(tmp_path):
    assert resolve_recipe("pretrain/tiny").name == "tiny.yaml"
    assert resolve_recipe("tiny", stage="pretrain").name == "tiny.yaml"
    custom = tmp_path / "mine.yaml"
    custom.write_text("model:\n  size: s\n")
    assert load_config(str(custom)).model.size == "s"


BAD_CONFIGS = [
    (["model.sise=s"], "unknown config key 'model.sise'; did you mean model.size"),
    (["optimm.base_lr=1"], "unknown config key 'optimm'; did you mean optim"),
    (["model.img_size=abc"], "config key 'model.img_size'='abc' has the wrong type: expected int"),
    (["model.size=xl"], "model.size='xl' is not allowed; choose one of ['tiny', 's', 'b', 'l', 'h', 'g']"),
    (["model.img_size=100"], "model.img_size=100 is not divisible by the patch size 16"),
    (["model.num_frames=15"], "model.num_frames=15 is not divisible by model.tubelet_size=2"),
    (["mask.ratio=1.0"], "mask.ratio=1.0 must be in the open interval (0, 1)"),
    (["mask.ratio=0"], "mask.ratio=0.0 must be in the open interval (0, 1)"),
    (["mask.decoder_ratio=1.5"], "mask.decoder_ratio=1.5 must be 0 (off) or in the open interval (0, 1)"),
    (["strategy.name=deepspeed", "strategy.zero_stage=4"], "strategy.zero_stage=4 is not allowed"),
    (
        ["strategy.name=deepspeed", "strategy.zero_stage=2", "strategy.offload_params=cpu"],
        "strategy.offload_params='cpu' needs strategy.zero_stage=3 (got 2)",
    ),
    (["strategy.zero_stage=2"], "strategy.zero_stage / offload need strategy.name=deepspeed"),
    (
        ["strategy.name=deepspeed", "strategy.zero_stage=3", "strategy.offload_params=nvme"],
        "strategy.nvme_path must be set when offloading to nvme",
    ),
    (
        ["strategy.name=horovod"],
        "strategy.name='horovod' is not allowed; choose one of ['auto', 'ddp', 'deepspeed']",
    ),
    (
        ["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"],
        "trainer.precision='bf16-mixed' is not supported with trainer.accelerator='cpu'",
    ),
    (["optim.warmup_epochs=50", "optim.epochs=10"], "optim.warmup_epochs=50 must be in [0, optim.epochs=10]"),
    (["data.batch_size=0"], "data.batch_size=0 must be > 0"),
    (["finetune.split=4"], "finetune.split=4 is not allowed; choose one of [1, 2, 3]"),
    (["cluster.launcher=slurm"], "cluster.launcher='slurm' is not allowed; choose one of ['local', 'ray']"),
    (
        ["model.img_size=48", "mask.decoder_ratio=0.5"],
        "the patch grid (3, 3) must have even height and width",
    ),
    (["model=3"], "config key 'model' is a section"),
    (["noequals"], "override 'noequals' must look like key=value"),
    (
        ["stage=evaluate"],
        "stage='evaluate' is not allowed; choose one of ['pretrain', 'finetune', 'distill']",
    ),
]


@pytest.mark.parametrize("overrides, message", BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_bad_config_fails_with_a_message_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config("pretrain/tiny", overrides)
    assert message in str(raised.value)


def test_unknown_key_in_a_recipe_file_is_named(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("data:\n  batchsize: 4\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'data.batchsize'; did you mean data.batch_size"
    ):
        load_config(str(recipe))


def test_unknown_recipe_suggests_shipped_ones():
    with pytest.raises(ConfigError, match=r"recipe 'pretrain/tinny' .*did you mean \['pretrain/tiny'"):
        load_config("pretrain/tinny")


def test_cli_config_error_exits_2_without_traceback(capsys):
    assert main(["config", "show", "pretrain/tiny", "model.sise=s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tubelet: config error: unknown config key 'model.sise'")
    assert "Traceback" not in err


def test_cli_config_show_prints_resolved_yaml(capsys):
    assert main(["config", "show", "pretrain/tiny", "model.size=s", "optim.base_lr=3e-4"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["size"] == "s"
    assert shown["optim"]["base_lr"] == pytest.approx(3e-4)
    assert shown["model"]["img_size"] == 64
    assert set(shown) == {f for f in RunConfig.__dataclass_fields__}


def test_yaml_dump_reloads_to_the_same_config(tmp_path):
    config = load_config("pretrain/tiny", ["mask.decoder_ratio=0.5"])
    saved = tmp_path / "resolved.yaml"
    saved.write_text(config_to_yaml(config))
    assert load_config(str(saved)) == config


def test_every_schema_field_has_a_docstring():
    from pretrain.config.reference import schema_fields

    undocumented = [name for name, _, _, doc in schema_fields() if not doc]
    assert undocumented == []


def test_readme_config_reference_is_current():
    from pretrain.config.reference import render_reference

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert render_reference() in readme, "regenerate with `tubelet config reference`"


@pytest.mark.parametrize(
    "grid, ratio, decoder_ratio, always_dropped_count, ok",
    [
        ((2, 2, 2), 0.5, 0.5, 1, True),  # bench model tiny: 2 hidden, 1 position dropped in both slices
        ((1, 2, 2), 0.5, 0.5, 2, False),  # one slice: the 2 dropped may be exactly the 2 hidden
        ((8, 14, 14), 0.9, 0.5, 0, True),  # VideoMAE V2 ViT-B: every position is reconstructed somewhere
        ((8, 14, 14), 0.001, 0.99, 0, False),  # hides nothing at all
        ((2, 2, 2), 0.25, 0.75, 2, False),  # 1 hidden, 2 never reconstructed
    ],
)
def test_mask_and_decoder_mask_leave_a_token_to_reconstruct(
    grid, ratio, decoder_ratio, always_dropped_count, ok
):
    from pretrain.config.checks import always_dropped, check_mask_fits_grid

    assert always_dropped(grid, decoder_ratio) == always_dropped_count
    if ok:
        check_mask_fits_grid(grid, ratio, decoder_ratio)
    else:
        with pytest.raises(
            ConfigError, match=rf"mask.ratio={ratio} hides \d+ of {grid[1] * grid[2]} positions"
        ):
            check_mask_fits_grid(grid, ratio, decoder_ratio)

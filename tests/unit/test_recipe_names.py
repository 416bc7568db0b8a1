"""Every recipe named in a `tubelet` help text or in README.md exists, and resolves the way the
command that names it resolves it (one resolver: `pretrain.config.resolve_recipe`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pretrain.cli import build_parser, main
from pretrain.config import load_config, resolve_recipe

README = Path(__file__).resolve().parents[2] / "README.md"

# `tubelet pretrain NAME`, `tubelet submit ... -- finetune NAME`, `evaluate NAME` (a finetune recipe),
# `config show NAME`, `launch/slurm.sbatch NAME` (pretrain), and "the `NAME` recipe".
COMMAND = re.compile(
    r"(?:tubelet\s+(?:submit\b[^\n]*?--\s+)?|--\s+)(pretrain|finetune|evaluate)\s+([^\s`'\"\\]+)"
)
CONFIG_SHOW = re.compile(r"config show\s+([^\s`'\"\\]+)")
SBATCH = re.compile(r"slurm\.sbatch\s+([^\s`'\"\\]+)")
NAMED = re.compile(r"`([\w/]+)` recipe")
EXAMPLES = re.compile(r"\(e\.g\. ([^)]*)\)")
STAGE_OF_COMMAND = {"pretrain": "pretrain", "finetune": "finetune", "evaluate": "finetune"}


def _is_placeholder(name: str) -> bool:
    return (
        name.startswith(("<", "-", "{")) or name.isupper() or "=" in name or name.endswith((".yaml", ".yml"))
    )


def recipes_named_in(text: str) -> set[tuple[str, str | None]]:
    """(recipe, stage that resolves it) for every recipe the text names."""
    found = {(name, STAGE_OF_COMMAND[command]) for command, name in COMMAND.findall(text)}
    found |= {(name, None if "/" in name else "pretrain") for name in CONFIG_SHOW.findall(text)}
    found |= {(name, "pretrain") for name in SBATCH.findall(text)}
    found |= {(name, None) for name in NAMED.findall(text)}
    return {(name, stage) for name, stage in found if not _is_placeholder(name)}


def _help_texts(parser: argparse.ArgumentParser, command: tuple[str, ...] = ()):
    """(command path, text) for every description, epilog and argument help of the CLI."""
    yield command, " ".join(filter(None, (parser.description, parser.epilog)))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_texts(sub, (*command, name))
        elif action.help:
            yield (*command, action.dest), action.help


def recipes_named_in_help() -> set[tuple[str, str | None]]:
    found: set[tuple[str, str | None]] = set()
    for path, text in _help_texts(build_parser()):
        found |= recipes_named_in(text)
        if path[-1:] == ("recipe",):  # "shipped recipe name (e.g. tiny, k400_vit_b) or a YAML path"
            stage = STAGE_OF_COMMAND.get(path[0], "pretrain")
            for examples in EXAMPLES.findall(text):
                found |= {(name.strip(), stage) for name in examples.split(",") if name.strip()}
    return found


@pytest.mark.parametrize("source", ["help", "README.md"])
def test_every_recipe_named_exists(source):
    named = recipes_named_in_help() if source == "help" else recipes_named_in(README.read_text())
    assert len(named) >= 3, f"the patterns found too little in the {source}: {named}"
    missing = []
    for name, stage in sorted(named, key=str):
        try:
            resolve_recipe(name, stage)
        except ValueError as error:
            missing.append(f"{name} (as {stage or 'a full name'}): {error}")
    assert not missing, f"recipes named in the {source} that do not exist:\n  " + "\n  ".join(missing)


def test_the_finder_sees_commands_and_examples():
    text = (
        "tubelet pretrain k400_vit_b data.shards=x\ntubelet submit --address A -- finetune tiny \\\n"
        "tubelet evaluate ucf101_vit_b ckpt=y\n`tubelet config show RECIPE` the `finetune/tiny` recipe"
    )
    assert recipes_named_in(text) == {
        ("k400_vit_b", "pretrain"),
        ("tiny", "finetune"),
        ("ucf101_vit_b", "finetune"),
        ("finetune/tiny", None),
    }


def test_config_show_resolves_like_the_stage(capsys):
    from pretrain.config import config_to_yaml

    assert main(["config", "show", "tiny"]) == 0
    assert capsys.readouterr().out == config_to_yaml(load_config("tiny", [], stage="pretrain"))
    assert main(["config", "show", "finetune/tiny", "data.batch_size=2"]) == 0
    assert capsys.readouterr().out == config_to_yaml(
        load_config("finetune/tiny", ["data.batch_size=2"], stage="finetune")
    )
    assert main(["config", "show", "tiny", "--stage", "finetune"]) == 0
    assert "stage: finetune" in capsys.readouterr().out

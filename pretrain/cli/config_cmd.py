"""`tubelet config show|list`: print the resolved config of a recipe, or the shipped recipes."""

from __future__ import annotations

import argparse

from pretrain.config import STAGES, config_to_yaml, list_recipes, load_config
from pretrain.config.reference import render_reference


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show resolved configs and shipped recipes")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the resolved config of RECIPE as YAML")
    show.add_argument(
        "recipe",
        help="recipe as `tubelet STAGE` takes it: a shipped name (tiny, finetune/tiny) or a YAML path",
    )
    show.add_argument("overrides", nargs="*", help="key=value overrides")
    show.add_argument(
        "--stage",
        choices=STAGES,
        default=None,
        help="resolve and run RECIPE as this stage does (default: the stage a shipped "
        "name starts with, else pretrain; a YAML path keeps its own stage)",
    )
    show.set_defaults(handler=_show)
    listing = actions.add_parser("list", help="list shipped recipes")
    listing.set_defaults(handler=_list)
    reference = actions.add_parser("reference", help="print the config reference table (README)")
    reference.set_defaults(handler=_reference)


def _show(args: argparse.Namespace) -> int:
    """The config `tubelet STAGE RECIPE ...` would run: the same resolver, the same stage; with
    data.shards set, its splits checked against the manifest as the stage checks them at its start."""
    config = load_config(args.recipe, args.overrides, stage=stage_for(args.recipe, args.stage))
    if config.data.shards:
        from pretrain.data.shards import read_manifest
        from pretrain.data.streams.selection import check_splits

        warning = check_splits(config, read_manifest(config.data.shards), evaluating=config.trains_classifier)
        if warning:
            print(f"# {warning}")
    print(config_to_yaml(config), end="")
    return 0


def stage_for(recipe: str, stage: str | None) -> str | None:
    if stage or recipe.endswith((".yaml", ".yml")):
        return stage
    named = recipe.split("/", 1)[0]
    return named if named in STAGES and "/" in recipe else "pretrain"


def _list(args: argparse.Namespace) -> int:
    for name in list_recipes():
        print(name)
    return 0


def _reference(args: argparse.Namespace) -> int:
    print(render_reference())
    return 0

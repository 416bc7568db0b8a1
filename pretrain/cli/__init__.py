"""`tubelet` command line: parse, load config, call one library function per subcommand.

Each area registers its subcommands in its own module under `pretrain/cli/`; this module only
assembles them and turns user mistakes into a one-line message and an exit code (2 for config
errors, 1 for other user errors) instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Optional, Sequence

from pretrain.errors import ConfigError, TubeletError, UserError

# Modules under pretrain/cli/ that each define `register(subparsers)`.
COMMAND_MODULES = ("quickstart", "config_cmd", "convert", "shards", "bench", "stages", "finetune", "submit",
                   "explain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tubelet",
        description="Pretrain video foundation models (VideoMAE) from raw video to benchmark results.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"pretrain.cli.{name}").register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.handler(args)
    except ConfigError as error:
        _print_on_rank_zero(f"tubelet: config error: {error}")
        return 2
    except TubeletError as error:
        _print_on_rank_zero(f"tubelet: error: {error}")
        return 1
    except KeyboardInterrupt:
        print("tubelet: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _print_on_rank_zero(message: str) -> None:
    """Every rank of a multi-process run hits the same user error; say it once."""
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0:
        print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

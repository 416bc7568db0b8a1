"""`tubelet` command line: parse, load config, call one library function per subcommand.

Each area registers its subcommands in its own module under `pretrain/cli/`; this module only
assembles them and turns user mistakes into a one-line message and an exit code instead of a
traceback, in one place: `ConfigError` exits 2, any other `TubeletError` and an `OSError` (a path
that is missing, unreadable or unwritable; its message names it) exit 1. Commands do not catch
errors themselves. `-v` also logs the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence

from pretrain import __version__
from pretrain.errors import ConfigError, TubeletError, UserError  # noqa: F401  (UserError: re-exported)
from pretrain.runtime.quiet import configure_console

log = logging.getLogger(__name__)

VERBOSE_HELP = "everything on the console: libraries' messages, W&B's lines, debug records, tracebacks"
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")  # key=value, never a flag or a path

# Modules under pretrain/cli/ that each define `register(subparsers)`.
COMMAND_MODULES = (
    "quickstart",
    "config_cmd",
    "convert",
    "shards",
    "bench",
    "train",
    "export",
    "evaluate",
    "predict",
    "submit",
    "smoke",
    "keyframes",
    "features",
    "explain",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tubelet",
        description="Pretrain video foundation models (VideoMAE) from raw video to benchmark results.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"tubelet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"pretrain.cli.{name}").register(subparsers)
    _verbose_on_every_command(parser)
    return parser


def _verbose_on_every_command(parser: argparse.ArgumentParser) -> None:
    """`tubelet quickstart -v` as well as `tubelet -v quickstart` (SUPPRESS: absent, it leaves the
    top level's value alone)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument(
                    "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
                )
                _verbose_on_every_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    configure_console(args.verbose)
    try:
        result = args.handler(args)
        sys.stdout.flush()  # a reader that went away (`| head -1`) is found here, not at exit
    except BrokenPipeError:
        return _reader_gone()
    except ConfigError as error:
        return _report(error, "config error", 2)
    except (TubeletError, OSError) as error:
        return _report(error, "error", 1)
    except KeyboardInterrupt:
        print("tubelet: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Like `parse_args`, but `key=value` overrides may also follow the flags
    (`tubelet features CKPT SRC --out X data.test_clips=1`): argparse hands the trailing ones back
    as unrecognized, and they join the command's `overrides` in the order given."""
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if OVERRIDE.match(item)]
    if overrides and isinstance(getattr(args, "overrides", None), list):
        args.overrides = [*args.overrides, *overrides]
        extra = [item for item in extra if not OVERRIDE.match(item)]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _reader_gone() -> int:
    """A closed stdout is a normal end, as for every Unix tool: exit 0, no message (and no second
    error when the interpreter flushes stdout at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def _report(error: Exception, kind: str, code: int) -> int:
    log.debug("traceback of the error below", exc_info=error)
    _print_on_rank_zero(f"tubelet: {kind}: {_one_line(str(error))}")
    return code


def _one_line(message: str) -> str:
    """Errors that list several problems (one per line) still print as one line."""
    line = ""
    for part in filter(None, (part.strip() for part in message.splitlines())):
        line += (" " if not line or line.endswith(":") else "; ") + part
    return line.strip()


def _print_on_rank_zero(message: str) -> None:
    """Every rank of a multi-process run hits the same user error; say it once."""
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0:
        print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""`tubelet shards build|inspect|verify`: WebDataset shards from raw video corpora."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing

if typing.TYPE_CHECKING:
    from pretrain.data.shards import BuildOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("shards", help="build, inspect and verify WebDataset video shards")
    commands = parser.add_subparsers(dest="shards_command", metavar="ACTION", required=True)
    _register_build(commands)
    inspect = commands.add_parser(
        "inspect", help="counts per split and class, duration, resolution/fps/codec"
    )
    inspect.add_argument("path", help="shard directory or fsspec URL (holding manifest.json)")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON")
    inspect.add_argument(
        "--contact-sheet",
        default=None,
        metavar="FILE.png",
        help="also write a grid of one captioned keyframe per sample (key, class, start-end), a row per class",
    )
    inspect.add_argument(
        "--per-class", type=int, default=None, help="samples per class on the contact sheet (default: all)"
    )
    inspect.add_argument(
        "--max-samples", type=int, default=64, help="thumbnails on the contact sheet at most (default 64)"
    )
    inspect.set_defaults(handler=_inspect)
    verify = commands.add_parser("verify", help="check shards against the manifest and decode every sample")
    verify.add_argument("path", help="shard directory or fsspec URL (holding manifest.json)")
    verify.add_argument("--no-decode", action="store_true", help="check sizes/sha256/keys only")
    verify.add_argument("--workers", type=int, default=1, help="shards checked in parallel processes")
    verify.set_defaults(handler=_verify)


def _register_build(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser(
        "build", help="build shards from folder / UCF101 / HMDB51 / annotation lists (resumable)"
    )
    build.add_argument(
        "source",
        choices=("folder", "ucf101", "hmdb51", "kinetics", "annotations"),
        help="kinetics / annotations: labelled spans of --annotations CSVs over INPUT's videos",
    )
    build.add_argument("input", help="directory the official archives were extracted into")
    build.add_argument("output", help="output directory or fsspec URL (file://, s3://, gs://, memory://)")
    add_option_flags(build)
    build.add_argument("--ray", action="store_true", help="run the shard tasks on a Ray cluster")
    build.add_argument("--address", default=None, help="Ray address (default: start a local instance)")
    build.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    from pretrain.data.shards import build_shards

    options = options_from_args(args)  # ShardsError for a value out of range
    runner = None
    if args.ray:  # the Ray part wraps the builder from outside: cli -> distributed -> data
        from pretrain.distributed.shard_tasks import ray_shard_runner

        runner = ray_shard_runner(args.address, options.workers if options.workers > 1 else None)
    with RichBuildProgress() as progress:
        summary = build_shards(
            args.source, args.input, args.output, options, runner=runner, progress=progress
        )
    print(
        f"{summary.dataset}: {summary.videos} videos ({_hours(summary.hours)} of video) in {summary.shards} "
        f"shards, {summary.bytes / 1e6:.1f} MB -> {summary.output}"
    )
    if summary.segments:
        print(f"segments: {summary.segments} from {summary.source_videos} video(s)")
    print(
        f"skipped {summary.skipped} bad video(s), {len(summary.split_problems)} split-file problem(s)"
        f"{' (see errors.jsonl)' if summary.skipped or summary.split_problems else ''}; "
        f"{summary.resumed_shards} shard(s) resumed; {summary.seconds:.1f} s, {summary.videos_per_second:.1f} videos/s"
    )
    return 0


# Fields whose flag takes only some values (argparse lists them in the help).
FLAG_CHOICES = {"probe": ("full", "fast"), "tail": ("merge", "drop")}
# Fields whose flag shows this name for its value in the usage line.
FLAG_METAVARS = {"segment_seconds": "S", "min_segment_seconds": "M", "annotations": "CSV"}


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `BuildOptions` field: name, type and default from the field, help from its
    docstring. A bool field is a switch (`--no-X` as well when it defaults to true)."""
    from pretrain.config.reference import field_docstrings
    from pretrain.data.shards import BuildOptions

    docs, hints = field_docstrings(BuildOptions), typing.get_type_hints(BuildOptions)
    for option in dataclasses.fields(BuildOptions):
        flag = "--" + option.name.replace("_", "-")
        kind = _value_type(hints[option.name])
        help_text = docs.get(option.name, "")
        if kind is bool:
            action = argparse.BooleanOptionalAction if option.default else "store_true"
            parser.add_argument(flag, dest=option.name, action=action, default=option.default, help=help_text)
            continue
        if kind is tuple:  # tuple[str, ...]: the flag repeats
            parser.add_argument(
                flag,
                dest=option.name,
                action="append",
                default=[],
                help=help_text,
                metavar=FLAG_METAVARS.get(option.name),
            )
            continue
        shown = f" (default {option.default})" if option.default is not None else ""
        parser.add_argument(
            flag,
            dest=option.name,
            type=kind,
            default=option.default,
            choices=FLAG_CHOICES.get(option.name),
            help=help_text + shown,
            metavar=FLAG_METAVARS.get(option.name),
        )


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    from pretrain.data.shards import BuildOptions

    values = {option.name: getattr(args, option.name) for option in dataclasses.fields(BuildOptions)}
    return BuildOptions(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


def _value_type(hint: object) -> type:
    """`Optional[int]` -> int; a flag parses one plain value (str, int, float) or is a bool switch;
    `tuple[str, ...]` -> tuple (a repeated flag)."""
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
        return tuple
    arguments = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = (
        arguments[0]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(arguments) == 1
        else hint
    )
    if kind not in (bool, int, float, str):
        raise TypeError(
            f"BuildOptions field of type {hint}: teach cli/shards.py add_option_flags to parse it"
        )
    return kind


def _hours(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 0.1 else f"{hours * 60:.1f} min"


def _inspect(args: argparse.Namespace) -> int:
    from pretrain.data.shards import inspect_shards

    report = inspect_shards(args.path)
    if args.contact_sheet:
        from pretrain.data.shards.contact_sheet import write_contact_sheet

        sheet = write_contact_sheet(args.path, args.contact_sheet, args.per_class, args.max_samples)
        print(sheet.line(args.contact_sheet), file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
        return _report_unreadable(report.failures)
    print(
        f"{report.location}: {report.dataset}, {report.samples} samples in {report.shards} shards, "
        f"{report.bytes / 1e6:.1f} MB, {_hours(report.duration_s / 3600)} of video, "
        f"{report.skipped_videos} input(s) skipped"
    )
    for split_id, subsets in report.splits.items():
        counts = ", ".join(f"{subset} {count}" for subset, count in subsets.items())
        print(f"  split {split_id}: {counts}")
    for title in ("classes", "resolutions", "fps", "codecs", "containers"):
        values = getattr(report, title)
        shown = ", ".join(f"{name} {count}" for name, count in list(values.items())[:12])
        more = f" ... (+{len(values) - 12})" if len(values) > 12 else ""
        print(f"  {title} ({len(values)}): {shown}{more}")
    return _report_unreadable(report.failures)


def _report_unreadable(failures: list[str]) -> int:
    """Exit status of inspect: 1 (after the report of the readable shards) if any shard was bad."""
    if failures:
        print(f"FAILED: {len(failures)} shard(s) could not be read", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1 if failures else 0


def _verify(args: argparse.Namespace) -> int:
    from pretrain.data.shards import verify_shards

    report = verify_shards(args.path, decode=not args.no_decode, workers=args.workers)
    if report.ok:
        print(
            f"OK: {report.shards_checked} shards, {report.samples_checked} samples match the manifest"
            f"{'' if args.no_decode else ' and decode'}"
        )
        return 0
    print(
        f"FAILED: {len(report.failures)} problem(s) in {report.location} "
        f"({len(report.bad_shards)} of {report.shards_checked} shards bad)",
        file=sys.stderr,
    )
    for failure in report.failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


class RichBuildProgress:
    """Videos done / total with ETA, plus shards and skipped counts; drawn on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]shards[/] {task.fields[shards]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("videos, {task.fields[skipped]} skipped"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = None
        self.shards_done, self.total_shards, self.skipped = 0, 0, 0

    def __enter__(self) -> RichBuildProgress:
        return self  # drawn from `start` on: a build that fails before planning prints only its error

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.stop()

    def start(self, total_videos: int, total_shards: int) -> None:
        self.progress.start()
        self.total_shards = total_shards
        self.task = self.progress.add_task("build", total=total_videos, shards=f"0/{total_shards}", skipped=0)

    def advance(self, result) -> None:
        self.shards_done += 1
        self.skipped += len(result.errors)
        self.progress.update(
            self.task,
            advance=result.count + len(result.errors),
            shards=f"{self.shards_done}/{self.total_shards}",
            skipped=self.skipped,
        )

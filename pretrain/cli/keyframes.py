"""`tubelet keyframes VIDEO... --out DIR [--every S | --scenes]`: keyframe images, keyframes.json
and a contact sheet."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pretrain.errors import DataError, UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keyframes", help="keyframe images + keyframes.json + contact_sheet.png of videos"
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--out", required=True, help="output directory")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="S",
        help="one frame every S seconds instead of the stream's I-frames",
    )
    choice.add_argument("--scenes", action="store_true", help="the first frame of every shot instead")
    parser.add_argument(
        "--scene-threshold", type=float, default=None, help="see `tubelet shards build --help`"
    )
    parser.set_defaults(handler=_keyframes)


def _keyframes(args: argparse.Namespace) -> int:
    from pretrain.data.video.keyframes import write_keyframes

    missing = [video for video in args.videos if not Path(video).is_file()]
    if missing:
        raise UserError(f"no such video: {', '.join(missing)}")
    for flag, value in (("--every", args.every), ("--scene-threshold", args.scene_threshold)):
        if value is not None and not (math.isfinite(value) and value > 0):  # nan passes `<= 0`
            raise UserError(f"{flag}={value} must be a finite number > 0")
    mode = "every" if args.every is not None else "scenes" if args.scenes else "iframes"
    records, failed = write_keyframes(args.videos, args.out, mode, args.every, args.scene_threshold)
    print(
        f"{len(records)} keyframes ({mode}) of {len(args.videos)} video(s) -> {args.out} "
        "(keyframes.json, contact_sheet.png)"
    )
    if failed:  # the good videos' keyframes are written; the bad ones in one line
        raise DataError("; ".join(f"{e['source']}: {e['reason']}" for e in failed))
    return 0

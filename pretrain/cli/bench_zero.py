"""`tubelet bench zero`: per-rank parameter / gradient / optimizer-state bytes and peak memory for
ZeRO stages 0-3 with several CPU ranks (see `pretrain.bench.zero`)."""

from __future__ import annotations

import argparse

from pretrain.models.sizes import SIZES


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("zero", help="ZeRO stage 0-3 memory per rank (CPU ranks over gloo)")
    parser.add_argument("--size", default="b", choices=sorted(SIZES), help="model size (default b)")
    parser.add_argument("--world-size", type=int, default=2, help="ranks (default 2)")
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 1, 2, 3], choices=[0, 1, 2, 3])
    parser.add_argument("--img-size", type=int, default=64, help="input side in pixels (default 64)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per rank (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per stage (default 2)")
    parser.set_defaults(handler=_bench_zero)


def _bench_zero(args: argparse.Namespace) -> int:
    from pretrain.bench.zero import ZeroBenchSettings, format_table, run_zero_bench
    from pretrain.errors import UserError

    if args.world_size < 2:
        raise UserError(f"--world-size={args.world_size}: ZeRO partitions over ranks, use 2 or more")
    settings = ZeroBenchSettings(
        size=args.size,
        world_size=args.world_size,
        stages=tuple(args.stages),
        img_size=args.img_size,
        num_frames=args.frames,
        batch_size=args.batch_size,
        steps=args.steps,
    )
    print(format_table(run_zero_bench(settings), settings))
    return 0

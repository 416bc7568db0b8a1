"""`tubelet convert SRC OUT --to {tubelet,hf}`: weights between Tubelet exports, Hugging Face
VideoMAE folders and original VideoMAE `.pth` files (the source format is detected)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert VideoMAE weights (HF folder, original .pth, Tubelet export)",
        description="Convert weights; SRC may be a Hugging Face VideoMAE save_pretrained folder, an original "
        "VideoMAE .pth, or a Tubelet export (model.safetensors + config.json).",
    )
    parser.add_argument("src", type=Path, help="source weights (file or folder)")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--to", choices=("tubelet", "hf"), default="tubelet", help="output format")
    parser.add_argument("--num-frames", type=int, help="frames per clip to record (original .pth has none)")
    parser.add_argument("--img-size", type=int, help="image size to record (original .pth has none)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pretrain.weights import convert_weights  # CheckpointError -> one line, exit 1 (cli.main)

    summary = convert_weights(
        args.src, args.out, to=args.to, num_frames=args.num_frames, img_size=args.img_size
    )
    print(
        f"converted {summary['source_format']} {summary['kind']} ({summary['tensors']} tensors) "
        f"-> {args.to} at {args.out}"
    )
    return 0

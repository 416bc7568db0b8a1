"""`tubelet features CKPT SOURCE --out DIR`: pooled encoder features of every sample (safetensors +
index), on the evaluation views; SOURCE is a shard directory, a folder of videos or one video."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pretrain.errors import DataError, UserError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features", help="pooled encoder features of every video / segment / shard sample"
    )
    parser.add_argument("ckpt", help="fine-tuned checkpoint, export, HF folder or original .pth")
    parser.add_argument(
        "source",
        help="shard directory (manifest.json), or a folder of videos / one video "
        "(built into shards under OUT/_shards first, with --segment-seconds if given)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--recipe",
        default="finetune/ucf101_vit_b",
        help="recipe for views and model shape (a fine-tuned checkpoint's own model wins)",
    )
    parser.add_argument(
        "--split", default="all", help="samples to embed: all (default), train, test, test2, ..."
    )
    parser.add_argument("--tokens", action="store_true", help="also save every token (large)")
    parser.add_argument(
        "--segment-seconds", type=float, default=None, help="raw video sources: segment first"
    )
    parser.add_argument("--ray", action="store_true", help="one Ray task per shard")
    parser.add_argument("--address", default=None, help="Ray address (default: a local instance)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. data.test_clips=2"
    )
    parser.set_defaults(handler=_features)


def _shards_of(source: Path, out: Path, segment_seconds) -> str:
    """A shard directory for SOURCE, building one from raw videos when needed (resumable too)."""
    from pretrain.data.shards import BuildOptions, build_shards

    if (source / "manifest.json").is_file():
        return str(source)
    if source.is_file():
        folder = out / "_input"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source.resolve())
        source = folder
    summary = build_shards(
        "folder", str(source), str(out / "_shards"), BuildOptions(segment_seconds=segment_seconds)
    )
    log.info("built %d samples from %s into %s", summary.videos, source, summary.output)
    return summary.output


def _features(args: argparse.Namespace) -> int:
    from pretrain.config import load_config
    from pretrain.evaluate.features import FeatureJob, extract_features

    source, out = Path(args.source), Path(args.out)
    if not source.exists():
        raise UserError(f"{source}: no such shard directory or video")
    config = load_config(args.recipe, list(args.overrides), stage="finetune")
    runner = None
    if args.ray:  # the Ray part wraps the extraction from outside: cli -> distributed
        from pretrain.distributed.shard_tasks import ray_shard_runner

        runner = ray_shard_runner(args.address)
    shards = _shards_of(source, out, args.segment_seconds)
    job = FeatureJob(str(args.ckpt), shards, str(out), config, args.split, args.tokens)
    summary = extract_features(job, runner=runner)
    print(
        f"{summary.samples} samples x {summary.views} views, dim {summary.dim}, from {summary.units} shard(s) "
        f"({summary.resumed_units} resumed) -> {summary.out} (index.jsonl, features-*.safetensors)"
    )
    if summary.damaged:  # every damaged shard in one line; the features of the rest are written
        shards_text = "; ".join(
            f"{d['shard']}: {d['skipped']} skipped, {d['reason']}" for d in summary.damaged
        )
        raise DataError(
            f"{summary.skipped} sample(s) lost in {len(summary.damaged)} damaged shard(s) "
            f"(listed in {out / 'features.json'}): {shards_text}"
        )
    return 0

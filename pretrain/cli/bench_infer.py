"""`tubelet bench infer`: classifier inference of ours vs transformers' VideoMAEForVideoClassification,
or, with `--teacher CKPT --student CKPT --held-out VIDEO...`, teacher fp32 / student fp32 / student
int8 side by side (`pretrain.bench.infer_light`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pretrain.errors import UserError


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "infer",
        help="batch-1 latency and clips/s vs transformers' VideoMAEForVideoClassification",
        description="Inference of Tubelet's classifier and transformers' on the same weights and clip, eager and "
        "with torch.compile; warm-up, then alternating repetitions.",
    )
    parser.add_argument("--size", default="s", help="model size (tiny, s, b, l, h, g)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument(
        "--batch", type=int, default=4, help="clips per forward for clips/s (latency is batch 1)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast dtype")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    light = parser.add_argument_group(
        "light path: teacher fp32, student fp32, student int8 (ONNX) on held-out videos, on the CPU"
    )
    light.add_argument("--teacher", metavar="CKPT", help="the big classifier (any checkpoint predict reads)")
    light.add_argument("--student", metavar="CKPT", help="the small classifier; exported to int8 on the fly")
    light.add_argument(
        "--held-out", nargs="+", metavar="VIDEO", help="held-out video files or folders (label: folder name)"
    )
    light.add_argument(
        "--calibration",
        nargs="+",
        metavar="VIDEO",
        default=[],
        help="training videos or folders: adds the student's static int8 (ranges calibrated on them)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.teacher or args.student:
        return _run_light(args)
    if min(args.batch, args.reps, args.img_size, args.num_frames) < 1 or args.warmup < 0:
        raise UserError("--batch, --reps, --img-size and --num-frames must be >= 1, --warmup >= 0")
    try:
        from pretrain.bench.infer import InferSettings, run_infer_bench

        settings = InferSettings(
            size=args.size,
            img_size=args.img_size,
            num_frames=args.num_frames,
            batch=args.batch,
            device=args.device,
            dtype=args.dtype,
            compile=not args.no_compile,
            reps=args.reps,
            warmup=args.warmup,
            threads=args.threads,
        )
        result = run_infer_bench(settings)
    except ImportError as error:
        raise UserError(
            f"the inference benchmark needs transformers (pip install 'tubelet[hf]'): {error}"
        ) from None
    except ValueError as error:
        raise UserError(str(error)) from None
    print(json.dumps(result) if args.json else format_result(result))
    return 0


def format_result(r: dict[str, Any]) -> str:
    lines = [
        f"VideoMAE-{r['size']} classifier inference, {r['num_frames']}x{r['img_size']}^2 ({r['tokens']} tokens), "
        f"{r['device']} {r['dtype']} ({r['device_name']}, {r['threads']} threads), {r['reps']} reps after "
        f"{r['warmup']} warm-up; logits agree to {r['max_abs_logit_diff']:.1e}",
        f"  {'variant':24s} {'batch-1 latency':>16s} {'clips/s (batch ' + str(r['batch']) + ')':>20s}",
    ]
    for name, v in r["variants"].items():
        lines.append(f"  {name:24s} {v['latency_ms']:13.1f} ms {v['clips_per_s']:20.2f}")
    base = r["variants"]["transformers eager"]["latency_ms"]
    lines.append(
        "  speedup vs transformers eager (latency): "
        + ", ".join(
            f"{name} {base / v['latency_ms']:.2f}x"
            for name, v in r["variants"].items()
            if name != "transformers eager"
        )
    )
    return "\n".join(lines)


def _run_light(args: argparse.Namespace) -> int:
    if not (args.teacher and args.student and args.held_out):
        raise UserError("the light table needs --teacher CKPT, --student CKPT and --held-out VIDEO...")
    if min(args.batch, args.reps) < 1 or args.warmup < 0:
        raise UserError("--batch and --reps must be >= 1, --warmup >= 0")
    from pretrain.bench.infer_light import LightSettings, run_light_bench

    settings = LightSettings(
        args.teacher,
        args.student,
        tuple(args.held_out),
        args.batch,
        args.reps,
        args.warmup,
        args.threads,
        tuple(args.calibration),
    )
    result = run_light_bench(settings)
    print(json.dumps(result) if args.json else format_light_result(result))
    return 0


def format_light_result(r: dict[str, Any]) -> str:
    rows = r["rows"]
    teacher_ms = rows["teacher fp32"]["latency_ms"]
    lines = [
        f"teacher {r['teacher']} vs student {r['student']}: {r['held_out_videos']} held-out videos "
        f"({r['labelled']} labelled), cpu, {r['threads']} threads, {r['reps']} reps after {r['warmup']} warm-up",
        f"  {'model':32s} {'input':>7s} {'batch-1 ms':>11s} {'vs teacher':>10s} "
        f"{'clips/s (b' + str(r['batch']) + ')':>13s} {'top-1':>6s}  agreement with fp32",
    ]
    for name, v in rows.items():
        top1 = "-" if v["top1"] is None else f"{100 * v['top1']:.1f}%"
        agreement = "-" if v["agreement"] is None else f"{100 * v['agreement']:.1f}% ({v['agrees_with']})"
        lines.append(
            f"  {name:32s} {v['frames']:>3d}x{v['size']:<3d} {v['latency_ms']:11.2f} "
            f"{teacher_ms / v['latency_ms']:9.2f}x {v['clips_per_s']:13.2f} {top1:>6s}  {agreement}"
        )
    student = rows["student fp32"]["latency_ms"]
    onnx32 = rows["student fp32 onnxruntime"]["latency_ms"]
    int8 = rows["student int8 onnxruntime"]["latency_ms"]
    lines.append(
        f"  int8 batch-1 latency: {student / int8:.2f}x lower than the student in PyTorch fp32, "
        f"{onnx32 / int8:.2f}x lower than in onnxruntime fp32"
    )
    return "\n".join(lines)

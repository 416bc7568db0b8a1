"""`tubelet bench model`: our VideoMAE training step against transformers' VideoMAEForPreTraining."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "model",
        help="training-step time and memory vs transformers' VideoMAEForPreTraining",
        description="One training step (forward, backward, AdamW) of Tubelet's VideoMAE and of transformers' "
        "VideoMAEForPreTraining on the same weights, input and mask; warm-up, then alternating reps.",
    )
    parser.add_argument("--size", default="s", help="model size (tiny, s, b, l, h, g)")
    parser.add_argument("--batch", type=int, default=2, help="clips per step")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--mask-ratio", type=float, default=0.9, help="encoder tube mask ratio")
    parser.add_argument(
        "--decoder-mask-ratio",
        type=float,
        default=0.0,
        help="VideoMAE V2 decoder mask ratio for ours (transformers always decodes all)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast dtype (fp32: none)"
    )
    parser.add_argument("--reps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time both models under torch.compile (as trainer.compile=true compiles)",
    )
    parser.add_argument(
        "--backbone",
        choices=("vit", "timesformer", "vivit"),
        default="vit",
        help="timesformer/vivit: the classifier step vs transformers' TimeSformer/ViViT, "
        "then a pretraining step of each backbone",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pretrain.errors import UserError

    check_arguments(args)
    try:
        from pretrain.bench.model import BenchSettings, run_model_bench

        settings = BenchSettings(
            size=args.size,
            batch=args.batch,
            img_size=args.img_size,
            num_frames=args.num_frames,
            mask_ratio=args.mask_ratio,
            decoder_mask_ratio=args.decoder_mask_ratio,
            device=args.device,
            dtype=args.dtype,
            reps=args.reps,
            warmup=args.warmup,
            threads=args.threads,
            compile=args.compile,
        )
        if args.backbone != "vit":
            return _run_backbone(settings, args)
        result = run_model_bench(settings)
    except ImportError as error:
        raise UserError(
            f"the model benchmark needs transformers (pip install 'tubelet[hf]'): {error}"
        ) from error
    print(json.dumps(result) if args.json else format_result(result))
    return 0


def _run_backbone(settings: Any, args: argparse.Namespace) -> int:
    from pretrain.bench.backbones import format_backbone_result, run_classifier_bench, run_pretraining_table

    classifier = run_classifier_bench(settings, args.backbone)
    table = run_pretraining_table(settings)
    print(
        json.dumps({"classifier": classifier, "pretraining": table})
        if args.json
        else format_backbone_result(classifier, table)
    )
    return 0


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.3f} GiB"


def check_arguments(args: argparse.Namespace) -> None:
    """The model and mask arguments obey the config schema's rules (a ConfigError names the key)."""
    from pretrain.config import MaskConfig, ModelConfig, RunConfig
    from pretrain.errors import UserError

    for flag, value, least in (
        ("--batch", args.batch, 1),
        ("--reps", args.reps, 1),
        ("--warmup", args.warmup, 0),
    ):
        if value < least:
            raise UserError(f"{flag} {value} must be >= {least}")
    RunConfig(
        model=ModelConfig(size=args.size, img_size=args.img_size, num_frames=args.num_frames),
        mask=MaskConfig(ratio=args.mask_ratio, decoder_ratio=args.decoder_mask_ratio),
    )


def format_result(r: dict[str, Any]) -> str:
    lines = [
        f"VideoMAE-{r['size']} training step, batch {r['batch']}, {r['num_frames']}x{r['img_size']}^2, "
        f"{r['tokens']} tokens, encoder sees {r['visible_tokens']}, decoder reconstructs "
        f"{r['decoder_target_tokens']:.0f}/clip (decoder mask {r['decoder_mask_ratio']}), "
        f"{r['device']} {r['dtype']} ({r['device_name']}, {r['threads']} threads), "
        f"{r['reps']} reps after {r['warmup']} warm-up",
        f"  ours          {r['ours_step_s']:8.3f} s/step  (cpu {r['ours_cpu_s']:.3f} s)  "
        f"{r['ours_gflop_per_step']:.1f} GFLOP  {r['ours_tflops']:.3f} TFLOP/s",
        f"  transformers  {r['hf_step_s']:8.3f} s/step  (cpu {r['hf_cpu_s']:.3f} s)  "
        f"{r['hf_gflop_per_step']:.1f} GFLOP  {r['hf_tflops']:.3f} TFLOP/s",
        f"  speedup       {r['speedup']:.2f}x wall   {r['speedup_cpu_time']:.2f}x cpu time",
        f"  memory ({r['memory_kind']}): ours {_gib(r['ours_memory_bytes'])}, "
        f"transformers {_gib(r['hf_memory_bytes'])}",
    ]
    if r.get("ours_compiled_step_s") is not None:
        lines += [
            f"  compiled      ours {r['ours_compiled_step_s']:.3f} s/step (compile {r['ours_compile_s']:.0f} s), "
            f"transformers {r['hf_compiled_step_s']:.3f} s/step (compile {r['hf_compile_s']:.0f} s)",
            f"  ours compiled vs transformers eager {r['speedup_compiled_vs_hf_eager']:.2f}x, "
            f"vs transformers compiled {r['speedup_compiled_vs_hf_compiled']:.2f}x; compiling gains ours "
            f"{r['compile_gain_ours']:.2f}x, transformers {r['compile_gain_hf']:.2f}x",
        ]
    if r.get("ours_mfu") is not None:
        lines.append(
            f"  MFU           ours {100 * r['ours_mfu']:.1f}%  transformers {100 * r['hf_mfu']:.1f}%"
        )
    return "\n".join(lines)

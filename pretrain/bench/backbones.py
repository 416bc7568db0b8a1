"""`tubelet bench model --backbone timesformer|vivit`: the classifier's training step (forward,
cross-entropy, backward, AdamW) of ours against the transformers model holding the same weights,
on the same clips, in one process; then one pretraining step of each backbone at the same mask.

Equal work: for timesformer, our TimeSformer against `TimesformerForVideoClassification` (the same
divided attention; transformers runs it in eager attention). transformers' ViViT is joint attention
(Model 1), so for vivit ours is the `vit` with a class token it converts to, against
`VivitForVideoClassification` (SDPA in both); our factorised encoder (Model 2, less work per clip)
is timed beside them for reference, not as the comparison.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pretrain.bench.model import (
    BenchSettings,
    _device_name,
    _make_step,
    _peak_memory,
    _sync,
    _time_alternating,
)
from pretrain.masking import batch_masks
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import BACKBONES
from pretrain.models.classifier import VideoClassifier
from pretrain.models.flops import classifier_forward_flops, training_flops, videomae_forward_flops
from pretrain.models.videomae import VideoMAE
from pretrain.weights import timesformer_hf, vivit_hf

NUM_CLASSES = 10
BACKBONE_TUBELET = {"timesformer": 1, "vivit": 2}  # TimeSformer embeds single frames, ViViT 2-frame tubelets


@dataclass
class ClassifierPair:
    ours: VideoClassifier
    hf: torch.nn.Module
    reference: dict[str, VideoClassifier]  # extra models timed beside (not the comparison)


def _spec(settings: BenchSettings, backbone: str, **values: Any) -> ArchSpec:
    return ArchSpec.from_size(
        settings.size,
        settings.img_size,
        settings.num_frames,
        tubelet_size=BACKBONE_TUBELET.get(backbone, 2),
        backbone=backbone,
        **values,
    )


def classifier_pair(settings: BenchSettings, backbone: str) -> ClassifierPair:
    """Ours and the transformers classifier with the same weights (equal work, see the module doc)."""
    import transformers

    if backbone == "timesformer":
        ours = VideoClassifier(_spec(settings, "timesformer", head_norm_eps=1e-6), NUM_CLASSES)
        converter, hf_class, reference = timesformer_hf, transformers.TimesformerForVideoClassification, {}
    elif backbone == "vivit":
        spec = _spec(settings, "vit", class_token=True, key_bias=True, mlp_act="gelu_tanh", norm_eps=1e-6)
        ours = VideoClassifier(spec, NUM_CLASSES)
        converter, hf_class = vivit_hf, transformers.VivitForVideoClassification
        reference = {"ours_factorised": VideoClassifier(_spec(settings, "vivit"), NUM_CLASSES)}
    else:
        raise ValueError(f"--backbone {backbone!r}: the classifier comparison covers timesformer and vivit")
    config = converter.hf_config(ours.spec, "classifier", [f"class_{i}" for i in range(NUM_CLASSES)])
    hf = hf_class(hf_class.config_class.from_dict(config))
    hf.load_state_dict(converter.state_dict_to_hf(ours.state_dict(), "classifier"), strict=True)
    return ClassifierPair(ours, hf, reference)


def run_classifier_bench(settings: BenchSettings, backbone: str) -> dict[str, Any]:
    """Step time, memory and FLOPs of ours vs transformers' classifier; speedup = hf / ours."""
    device = torch.device(settings.device)
    torch.manual_seed(settings.seed)
    pair = classifier_pair(settings, backbone)
    models = {"ours": pair.ours, "hf": pair.hf, **pair.reference}
    for model in models.values():
        model.to(device).train()
    generator = torch.Generator().manual_seed(settings.seed)
    spec = pair.ours.spec
    video = torch.randn(
        settings.batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator
    ).to(device)
    hf_video = video.transpose(1, 2).contiguous()  # transformers takes (B, T, C, H, W)
    labels = torch.randint(NUM_CLASSES, (settings.batch,), generator=generator).to(device)
    with torch.no_grad():
        pair.hf.eval(), pair.ours.eval()
        gap = float((pair.hf(hf_video).logits - pair.ours(video)).abs().max())
        pair.hf.train(), pair.ours.train()
    losses: dict[str, Callable[[], torch.Tensor]] = {
        name: (lambda m=model: F.cross_entropy(m(video), labels))
        for name, model in models.items()
        if name != "hf"
    }
    losses["hf"] = lambda: pair.hf(pixel_values=hf_video, labels=labels).loss
    return _timed(
        settings,
        device,
        models,
        losses,
        {
            "max_logit_gap": gap,
            "gflop_per_clip": {
                name: training_flops(classifier_forward_flops(m.spec, NUM_CLASSES)) / 1e9
                for name, m in models.items()
                if name != "hf"
            },
            "spec": {"backbone": spec.backbone, "tokens": spec.num_tokens, "tubelet": spec.tubelet_size},
        },
    )


def run_pretraining_table(settings: BenchSettings) -> dict[str, Any]:
    """One pretraining step of vit, timesformer and vivit at the same size, clip and tube mask
    ratio (each at its own tubelet: TimeSformer embeds frames, so it sees twice the tokens)."""
    device = torch.device(settings.device)
    torch.manual_seed(settings.seed)
    models, losses, flops = {}, {}, {}
    for backbone in BACKBONES:
        spec = _spec(settings, backbone)
        generator = torch.Generator().manual_seed(settings.seed)
        video = torch.randn(
            settings.batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator
        )
        mask, _ = batch_masks(settings.batch, spec.grid, settings.mask_ratio, generator=generator)
        model = VideoMAE(spec).to(device).train()
        video, mask = video.to(device), mask.to(device)
        models[backbone] = model
        losses[backbone] = lambda m=model, v=video, k=mask: m(v, k).loss
        visible = spec.num_tokens - int(mask[0].sum())
        flops[backbone] = (
            training_flops(videomae_forward_flops(spec, visible, spec.num_tokens - visible)) / 1e9
        )
    return _timed(settings, device, models, losses, {"gflop_per_clip": flops})


def _timed(
    settings: BenchSettings,
    device: torch.device,
    models: dict[str, torch.nn.Module],
    losses: dict[str, Callable[[], torch.Tensor]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    autocast = _autocast(settings, device)
    steps = {name: _make_step(models[name], losses[name], autocast) for name in models}
    memory = {name: _peak_memory(steps[name], losses[name], autocast, device) for name in models}
    times = _time_alternating(steps, settings, device)
    step_s = {name: statistics.median(t["wall"]) for name, t in times.items()}
    cpu_s = {name: statistics.median(t["cpu"]) for name, t in times.items()}
    result = {
        **vars(settings),
        **extra,
        "step_s": step_s,
        "cpu_s": cpu_s,
        "memory_bytes": memory,
        "params": {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()},
        "threads": torch.get_num_threads(),
        "device_name": _device_name(device),
    }
    if "hf" in step_s:
        result["speedup"] = step_s["hf"] / step_s["ours"]
        result["speedup_cpu_time"] = cpu_s["hf"] / cpu_s["ours"]
    _sync(device)
    return result


def _autocast(settings: BenchSettings, device: torch.device):
    from contextlib import nullcontext

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.dtype)
    return (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext


def format_backbone_result(classifier: dict[str, Any], table: dict[str, Any]) -> str:
    spec = classifier["spec"]
    lines = [
        f"{spec['backbone']} classifier training step, size {classifier['size']}, batch {classifier['batch']}, "
        f"{classifier['num_frames']}x{classifier['img_size']}^2 ({spec['tokens']} tokens, tubelet "
        f"{spec['tubelet']}), {classifier['device']} {classifier['dtype']} ({classifier['threads']} threads), "
        f"logit gap {classifier['max_logit_gap']:.1e}"
    ]
    for name in classifier["step_s"]:
        gflop = classifier["gflop_per_clip"].get(name, classifier["gflop_per_clip"]["ours"])
        lines.append(
            f"  {name:16s} {classifier['step_s'][name]:8.3f} s/step  (cpu {classifier['cpu_s'][name]:.3f} s)  "
            f"{classifier['memory_bytes'][name] / 2**30:.3f} GiB  {gflop:.2f} GFLOP/clip  "
            f"{classifier['params'][name] / 1e6:.2f}M params"
        )
    lines.append(
        f"  speedup          {classifier['speedup']:.2f}x wall   {classifier['speedup_cpu_time']:.2f}x cpu time"
    )
    lines.append(f"pretraining step, tube mask {table['mask_ratio']}, batch {table['batch']}:")
    for name in table["step_s"]:
        lines.append(
            f"  {name:16s} {table['step_s'][name]:8.3f} s/step  {table['memory_bytes'][name] / 2**30:.3f} GiB  "
            f"{table['gflop_per_clip'][name]:.2f} GFLOP/clip  {table['params'][name] / 1e6:.2f}M params"
        )
    return "\n".join(lines)

"""`tubelet bench model` runs at tiny size and reports its figures; the analytic FLOP count agrees
with PyTorch's own FLOP counter."""

import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from pretrain.bench.model import hf_twin
from pretrain.cli import main
from pretrain.masking import batch_masks
from pretrain.models import ArchSpec, VideoMAE
from pretrain.models.classifier import VideoClassifier
from pretrain.models.flops import training_flops, videomae_forward_flops
from pretrain.runtime.device_peaks import peak_tflops

pytest.importorskip("transformers")
TINY = [
    "--size",
    "tiny",
    "--batch",
    "2",
    "--img-size",
    "32",
    "--num-frames",
    "4",
    "--mask-ratio",
    "0.5",
    "--reps",
    "2",
    "--warmup",
    "1",
]


@pytest.mark.parametrize("decoder_ratio", ["0", "0.5"])
def test_bench_model_json(decoder_ratio, capsys):
    assert main(["bench", "model", *TINY, "--decoder-mask-ratio", decoder_ratio, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "ours_step_s",
        "hf_step_s",
        "speedup",
        "ours_cpu_s",
        "hf_cpu_s",
        "ours_memory_bytes",
        "hf_memory_bytes",
        "ours_gflop_per_step",
        "hf_gflop_per_step",
    ):
        assert result[key] > 0, key
    assert len(result["ours_step_times_s"]) == 2 and result["memory_kind"] == "cpu_saved_activations"
    assert result["ours_mfu"] is None  # no MFU without a known accelerator peak
    assert result["visible_tokens"] == 4
    if decoder_ratio == "0":
        assert result["decoder_target_tokens"] == 4
    else:
        assert (
            result["decoder_target_tokens"] < 4
            and result["ours_gflop_per_step"] < result["hf_gflop_per_step"]
        )


def test_bench_model_text_and_errors(capsys):
    assert main(["bench", "model", *TINY]) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "transformers" in out and "GiB" in out
    assert main(["bench", "model", *TINY, "--device", "cuda"]) == (0 if torch.cuda.is_available() else 1)


def test_analytic_flops_match_torch_flop_counter():
    spec = ArchSpec.from_size("tiny", img_size=64, num_frames=8)  # 64 tokens
    model = VideoMAE(spec)
    mask, decoder_mask = batch_masks(1, spec.grid, 0.75, 0.5, generator=torch.Generator().manual_seed(0))
    video = torch.randn(1, 3, 8, 64, 64)
    counter = FlopCounterMode(display=False)
    # the math backend runs attention as counted matmuls (the fused CPU kernel is not counted)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        out = model(video, mask, decoder_mask)
    visible, targets = 64 - int(mask.sum()), int(out.target_mask.sum())
    assert out.pred.shape[1] == targets  # one clip: no padding
    assert counter.get_total_flops() == videomae_forward_flops(spec, visible, targets)
    hf = hf_twin(model)  # transformers embeds every token and runs the whole last decoder block
    hf_counter = FlopCounterMode(display=False)
    with hf_counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        hf(video.permute(0, 2, 1, 3, 4), bool_masked_pos=mask)
    assert hf_counter.get_total_flops() == videomae_forward_flops(
        spec, visible, int(mask.sum()), embedded=64, trimmed_last_block=False
    )
    assert model.flops_per_clip(visible, targets) == counter.get_total_flops()  # the model owns its count


def test_classifier_flops_per_clip_match_torch_flop_counter():
    spec = ArchSpec.from_size("tiny", img_size=64, num_frames=8)
    model = VideoClassifier(spec, num_classes=5).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(torch.randn(1, 3, 8, 64, 64))
    assert model.flops_per_clip() == counter.get_total_flops()
    assert training_flops(model.flops_per_clip()) == 3 * counter.get_total_flops()


def test_peak_table():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "tf32") == 156.0
    assert peak_tflops("Some CPU", "fp32") is None


@pytest.mark.gpu
def test_bench_model_cuda_bf16_reports_mfu(capsys):
    assert main(["bench", "model", *TINY, "--device", "cuda", "--dtype", "bf16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["memory_kind"] == "cuda_peak_allocated" and result["ours_memory_bytes"] > 0
    if "H100" in result["device_name"] or "A100" in result["device_name"]:
        assert 0 < result["ours_mfu"] < 1

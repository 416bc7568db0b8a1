"""`tubelet bench cores` arithmetic and inputs, and `bench model --compile`'s ratios (the timed
runs themselves are the GPU script's and the README's; compiling takes minutes on this CPU)."""

import json

import pytest
import torch

from pretrain.bench.cores import (
    analytic_gpu_clips_per_s,
    cores_figure,
    format_figure,
    measured_gpu_clips_per_s,
)
from pretrain.bench.model_compile import compiled_figures
from pretrain.cli import build_parser, main
from pretrain.masking import num_hidden_tokens
from pretrain.models.arch import ArchSpec
from pretrain.models.flops import training_flops, videomae_forward_flops


def test_analytic_gpu_rate_is_mfu_times_peak_over_training_flops():
    spec = ArchSpec.from_size("b", 224, 16)
    hidden = num_hidden_tokens(spec.grid, 0.9)
    flops = training_flops(videomae_forward_flops(spec, spec.num_tokens - hidden, hidden))
    clips, counted = analytic_gpu_clips_per_s("b", 0.9, 0.4, 989.4)
    assert counted == flops and 150e9 < flops < 250e9  # ~200 GFLOP per ViT-B clip at 90% masking
    assert clips == pytest.approx(0.4 * 989.4e12 / flops)


def test_cores_per_gpu_is_gpu_rate_over_core_rate():
    figure = cores_figure("b", "vit", (120.0, "measured: x"), {"1": 8.0, "4": 30.0})
    assert figure.cores_per_gpu == {"1": 15.0, "4": 4.0}
    text = format_figure(figure)
    assert "15.0 cores per GPU (15 loader processes)" in text and "4.0 cores per GPU" in text


def test_measured_rate_comes_from_a_bench_model_result(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(
        json.dumps(
            {
                "size": "b",
                "batch": 8,
                "ours_step_s": 0.05,
                "ours_mfu": 0.31,
                "dtype": "bf16",
                "device_name": "NVIDIA H200",
                "num_frames": 16,
                "img_size": 224,
            }
        )
    )
    clips, note = measured_gpu_clips_per_s(path)
    assert clips == pytest.approx(160.0) and "MFU 31.0%" in note and "H200" in note


def test_cli_prints_the_figure_from_given_rates(tmp_path, capsys):
    assert main(["bench", "cores", "--core-rates", "1=10,4=40", "--mfu", "0.2", "--json"]) == 0
    figure = json.loads(capsys.readouterr().out)
    assert figure["gpu_source"].startswith("analytic, not measured")
    assert figure["cores_per_gpu"]["1"] == pytest.approx(4 * figure["cores_per_gpu"]["4"], rel=1e-2)
    assert main(["bench", "cores", "--core-rates", "1=zero"]) == 1
    assert "must look like 1=4.1,4=11.8" in capsys.readouterr().err
    if not torch.cuda.is_available():  # GPU decoding is refused before any corpus is built
        assert main(["bench", "cores", "--core-rates", "1=10", "--gpu-decode"]) == 2
        assert "data.decode_device=cuda needs a CUDA GPU" in capsys.readouterr().err


def test_cores_figure_prints_the_gpu_decode_rates():
    from pretrain.bench.cores import cores_figure, format_figure

    decode = {"gpu_decode_clips_per_s": 4000.0, "loader_clips_per_cpu_s": 500.0}
    text = format_figure(cores_figure("b", "vit", (2000.0, "given"), {"1": 100.0}, decode))
    assert "NVDEC + device crops 4000.0 clips/s (2.00x the training rate)" in text
    assert "500.0 clips per CPU-second -> 4.0 cores per GPU" in text


def test_compiled_ratios():
    times = {
        name: {"wall": [step, step * 1.2]}
        for name, step in (("ours", 1.0), ("hf", 1.5), ("ours_compiled", 0.5), ("hf_compiled", 1.0))
    }
    figures = compiled_figures(times, {"ours_compiled": 30.0, "hf_compiled": 20.0})
    assert figures["speedup_compiled_vs_hf_eager"] == pytest.approx(3.0)
    assert figures["speedup_compiled_vs_hf_compiled"] == pytest.approx(2.0)
    assert figures["compile_gain_ours"] == pytest.approx(2.0) and figures["compile_gain_hf"] == pytest.approx(
        1.5
    )
    assert build_parser().parse_args(["bench", "model", "--compile"]).compile is True

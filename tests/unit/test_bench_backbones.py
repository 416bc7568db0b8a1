"""`tubelet bench model --backbone`: ours and the transformers classifier hold the same weights
(equal work), the figures come out, and the pretraining table has every backbone."""

import json

import pytest
import torch

from pretrain.bench.backbones import classifier_pair
from pretrain.bench.model import BenchSettings
from pretrain.cli import main

pytest.importorskip("transformers")
TINY = BenchSettings(size="tiny", batch=2, img_size=32, num_frames=4, mask_ratio=0.5, reps=1, warmup=0)


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_the_pair_computes_the_same_function(backbone):
    torch.manual_seed(0)
    pair = classifier_pair(TINY, backbone)
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        gap = (pair.hf.eval()(video.transpose(1, 2)).logits - pair.ours.eval()(video)).abs().max()
    assert gap < 1e-5
    assert sum(p.numel() for p in pair.hf.parameters()) == sum(p.numel() for p in pair.ours.parameters())
    assert list(pair.reference) == ([] if backbone == "timesformer" else ["ours_factorised"])


def test_bench_model_backbone_json(capsys):
    args = [
        "bench",
        "model",
        "--backbone",
        "vivit",
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
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    classifier, table = result["classifier"], result["pretraining"]
    assert set(classifier["step_s"]) == {"ours", "hf", "ours_factorised"} and classifier["speedup"] > 0
    assert classifier["max_logit_gap"] < 1e-5
    assert set(table["step_s"]) == {"vit", "timesformer", "vivit"}
    assert all(
        table["gflop_per_clip"][name] > 0 and table["memory_bytes"][name] > 0 for name in table["step_s"]
    )
    # TimeSformer embeds single frames: twice vit's tokens at the same clip, so more FLOPs per clip
    assert table["gflop_per_clip"]["timesformer"] > table["gflop_per_clip"]["vit"]

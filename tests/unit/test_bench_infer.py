"""`tubelet bench infer`: both classifiers compute the same logits, every variant is timed."""

from __future__ import annotations

import json

import pytest

from pretrain.cli import main
from pretrain.cli.bench_infer import format_result


def test_bench_infer_times_ours_and_transformers_on_the_same_function(capsys):
    pytest.importorskip("transformers")
    argv = [
        "bench",
        "infer",
        "--size",
        "tiny",
        "--img-size",
        "32",
        "--num-frames",
        "4",
        "--batch",
        "2",
        "--no-compile",
        "--reps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["variants"]) == {"ours eager", "transformers eager"}
    assert result["max_abs_logit_diff"] < 1e-4 and result["tokens"] == 2 * 2 * 2
    for figures in result["variants"].values():
        assert figures["latency_ms"] > 0 and figures["clips_per_s"] > 0
    assert "speedup vs transformers eager" in format_result(result)


def test_bad_counts_are_user_errors(capsys):
    assert main(["bench", "infer", "--batch", "0"]) == 1
    assert "--batch" in capsys.readouterr().err

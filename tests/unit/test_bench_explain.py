"""`tubelet bench explain`: one figure per method and backbone from the same clips, the table's
layout, and a user mistake refused before any work (the smallest setting: a plumbing check)."""

import json

from pretrain.bench.explain import MethodFigures, render_table
from pretrain.cli import main


def test_smallest_setting_scores_every_method(capsys):
    assert main(["bench", "explain", "--backbones", "vivit", "--steps", "1", "--clips", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(f["backbone"], f["method"]) for f in report["figures"]] == [
        ("vivit", "relevance"),
        ("vivit", "gradient"),
        ("vivit", "rollout"),
        ("vivit", "occlusion"),
    ]
    for figure in report["figures"]:  # one clip, the same random orders for every method
        assert figure["box_mass_ratio"] >= 0 and 0 <= figure["deletion_auc"] <= 1
        assert figure["random_deletion_auc"] == report["figures"][0]["random_deletion_auc"]
    assert set(report["accuracy"]) == {"vivit"}


def test_table_is_method_by_backbone():
    figures = [
        MethodFigures("vit", "relevance", 9.34, 0.456, 0.763, 1.0),
        MethodFigures("vivit", "relevance", 3.71, 0.561, 0.779, 0.78),
    ]
    assert render_table(figures, {"vit": 1.0, "vivit": 0.889}).splitlines() == [
        "| method | vit (acc 100%) | vivit (acc 89%) |",
        "|---|---|---|",
        "| relevance | 9.3x; 0.46 vs 0.76 | 3.7x; 0.56 vs 0.78 |",
    ]


def test_unknown_backbone_is_refused(capsys):
    assert main(["bench", "explain", "--backbones", "vit,mamba"]) == 1
    assert "--backbones 'vit,mamba': choose from vit, timesformer, vivit" in capsys.readouterr().err

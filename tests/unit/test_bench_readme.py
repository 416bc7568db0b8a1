"""`tubelet bench readme`: every figure it names is found in the README, and its smallest setting runs
the named commands end to end (a plumbing check: toy settings, not figures)."""

import json
from pathlib import Path

import pytest

from pretrain.bench.readme import readme_value
from pretrain.bench.readme_figures import FIGURES, RUNS
from pretrain.cli import main

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.name)
def test_every_figure_is_found_once_in_the_readme(figure):
    assert readme_value(README, figure) > 0
    assert figure.run in RUNS


def test_smallest_setting_reruns_the_commands_and_pairs_each_figure(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    assert main(["bench", "readme", "--smallest", "--runs", "infer,cores", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["figure"]: row for row in report["figures"]}
    expected = [f for f in FIGURES if f.run in ("infer", "cores")]
    assert sorted(rows) == sorted(f.name for f in expected)
    for figure in expected:
        row = rows[figure.name]
        assert row["readme"] == readme_value(README, figure)
        assert row["now"] > 0 and row["command"].startswith(f"tubelet {RUNS[figure.run].smallest[0]} ")
    assert rows["cores: clips per CPU-second, num_sample=4"]["now"] == 30.0  # --core-rates 1=8,4=30
    assert report["machine"]["cpus"] >= 1


def test_an_unknown_run_is_refused_before_any_work(capsys):
    assert main(["bench", "readme", "--runs", "infer,nope"]) == 1
    assert "unknown run(s) ['nope']; choose from" in capsys.readouterr().err

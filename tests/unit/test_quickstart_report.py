"""The quickstart report: losses as means over the first and last 10% of steps, and the `--small`
setting called a plumbing check with chance spelled out."""

from pretrain.quickstart.report import render_markdown, window_means


def test_window_means_average_the_first_and_last_tenth_of_the_steps():
    series = [(step, float(step)) for step in range(0, 101, 5)]  # steps 0..100, logged every 5
    assert window_means(series) == (5.0, 95.0)  # steps 0, 5, 10 and 90, 95, 100
    assert window_means([(7, 2.5)]) == (2.5, 2.5)
    assert window_means([]) == (None, None)


def summary(plumbing_check: bool) -> dict:
    run = {
        "init": "pretrained",
        "seed": 0,
        "test_top1": 0.25,
        "test_top5": 1.0,
        "loss_first_10pct": 1.3861,
        "loss_last_10pct": 1.2004,
        "clips_per_s": 40.0,
        "seconds": 12.0,
    }
    return {
        "backbone": "vivit",
        "num_classes": 4,
        "plumbing_check": plumbing_check,
        "finetune": [run, {**run, "init": "scratch"}],
        "mean_test_top1": {"pretrained": 0.25, "scratch": 0.25},
        "mean_test_top1_shuffled": {"pretrained": None, "scratch": None},
        "pretrain": {
            "loss_first_10pct": 1.0132,
            "loss_last_10pct": 0.9517,
            "steps": 192,
            "clips_per_s": 30.0,
            "seconds": 25.0,
        },
        "wall_seconds": 60.0,
    }


def test_small_report_says_plumbing_check_and_chance():
    markdown = render_markdown(summary(plumbing_check=True))
    assert "**A plumbing check, not a result** (`--small`)" in markdown
    assert "25% is chance for 4 classes" in markdown
    assert "| pretrained | 0 | 25.0% | 1.386 → 1.200 | 40.0 | 12.0 |" in markdown
    assert "Pretraining: loss 1.013 → 0.952 (means over the first and last 10% of 192 steps)" in markdown
    assert "plumbing check" not in render_markdown(summary(plumbing_check=False))


def test_finetune_warmup_is_a_quarter_of_the_epochs():
    """3 of 12 epochs (ViViT's seed 0 stayed near chance with 1); at least one in `--small`."""
    from pretrain.quickstart.flow import QuickstartPlan

    assert QuickstartPlan().finetune_warmup_epochs() == 3
    assert QuickstartPlan.small().finetune_warmup_epochs() == 1

"""The folder-corpus path of issue 17: `shards build folder --test-fraction 0.2`, fine-tune on
`train`, the final test scores only the held-out videos; evaluating on the training videos is
possible only with data.eval_on_train=true, and the results say so in capitals."""

from __future__ import annotations

import json

from finetune_runs import InProcessRun, finetune_config, short_finetune

from pretrain.cli import main
from pretrain.data.generated.corpora import square_frames, write_folder_tree
from pretrain.evaluate.run import evaluate


def test_folder_corpus_with_a_held_out_split_fine_tunes_and_tests_on_it(tmp_path):
    write_folder_tree(
        tmp_path / "raw", classes=2, videos_per_class=5, frames=square_frames(16, num_classes=2)
    )
    shards = tmp_path / "shards"
    assert (
        main(
            [
                "shards",
                "build",
                "folder",
                str(tmp_path / "raw"),
                str(shards),
                "--labels-from-folders",
                "--test-fraction",
                "0.2",
            ]
        )
        == 0
    )
    result = short_finetune(shards, tmp_path, "held_out")
    assert result.global_step == 3 and result.metrics["test/num_videos"] == 2  # one held out per class
    results = json.loads((result.run_dir / "eval" / "results.json").read_text())
    assert "warning" not in results and results["splits"]["1"]["num_videos"] == 2

    config = finetune_config(shards, tmp_path, "on_train", "data.eval_split=train", "data.eval_on_train=true")
    with InProcessRun():
        marked = evaluate(config, str(result.last_checkpoint), out_dir=tmp_path / "on_train")
    assert marked.per_split[1].num_videos == 8
    text = marked.files["results_md"].read_text()
    assert text.startswith("**WARNING: EVALUATED ON TRAINING VIDEOS: data.eval_split='train' (split 1 train)")
    assert json.loads(marked.files["results_json"].read_text())["warning"].startswith("EVALUATED ON TRAINING")

"""`tubelet predict`: class names from the checkpoint, probabilities per video file (AVI and MP4),
a clear message for a file that is not a video while the others still get their answers."""

from __future__ import annotations

import logging

import pytest
from finetune_runs import OneThread, motion_shards, short_finetune

from pretrain.cli import main
from pretrain.data.generated.motion_dataset import MOTIONS, motion_frames
from pretrain.data.video.write import write_video
from pretrain.evaluate.predict import predict

CLASSES = ("MoveUpSlow", "MoveDownFast", "MoveDownSlow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    shards = motion_shards(root, CLASSES, groups=(1, 8))
    result = short_finetune(shards, root / "runs", "ft")
    frames = motion_frames(list(MOTIONS), num_frames=40)
    videos = [write_video(root / "up.avi", frames(0, 1000)), write_video(root / "down.mp4", frames(3, 1001))]
    text = root / "notes.txt"
    text.write_text("not a video\n")
    return result.last_checkpoint, videos, text


def test_predict_ranks_classes_by_name(trained):
    checkpoint, videos, _ = trained
    with OneThread():
        report = predict(checkpoint, videos, topk=2)
    assert not report.failed
    for prediction in report.predictions:
        names = [name for name, _ in prediction.topk]
        probs = [prob for _, prob in prediction.topk]
        assert len(names) == 2 and set(names) <= set(CLASSES)
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert report.views == 2 * 2 * 1  # 2 videos × (2 clips × 1 crop) from the tiny recipe
    assert report.clips_per_s > 0


def test_cli_reports_a_non_video_and_answers_the_rest(trained, capsys, caplog):
    checkpoint, videos, text = trained
    with OneThread(), caplog.at_level(logging.INFO):
        code = main(
            [
                "predict",
                str(checkpoint),
                str(videos[0]),
                str(text),
                str(videos[1]),
                str(text.parent / "missing.mp4"),
                "--topk",
                "3",
                "--clips",
                "3",
            ]
        )
    out = capsys.readouterr().out.splitlines()
    assert code == 1  # one input failed
    assert out[0].startswith(f"{videos[0]}: ") and all(name in out[0] for name in CLASSES)
    assert out[1].startswith(f"{text}: skipped: not a video")
    assert out[2].startswith(f"{videos[1]}: ") and "%" in out[2]
    assert out[3] == f"{text.parent / 'missing.mp4'}: skipped: no such file"  # once: no warning too
    assert out[4].startswith("6 views of 2 video(s) in ") and out[4].endswith("views/s")  # 2 x 3 clips
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_missing_checkpoint_is_a_user_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nothing"), str(tmp_path / "x.avi")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_predict_with_a_hugging_face_classifier_names_its_labels(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    _, videos, _ = trained
    config = transformers.VideoMAEConfig(
        image_size=64,
        patch_size=16,
        num_frames=8,
        tubelet_size=2,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        use_mean_pooling=True,
        id2label={0: "jump", 1: "run", 2: "walk"},
        label2id={"jump": 0, "run": 1, "walk": 2},
    )
    transformers.VideoMAEForVideoClassification(config).save_pretrained(tmp_path / "hf")
    with OneThread():
        report = predict(tmp_path / "hf", videos[:1], topk=3, clips=2, crops=1)
    assert sorted(name for name, _ in report.predictions[0].topk) == ["jump", "run", "walk"]
    assert report.views == 2

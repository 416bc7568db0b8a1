"""`tubelet explain`: the honest check (saliency of a fine-tuned classifier lands on the object that
decides the class, and deleting salient tokens first hurts the decision faster than random
deletion), the files it writes, reconstruction error for a pretraining checkpoint, user mistakes."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from finetune_runs import OneThread
from PIL import Image
from salient_model import CLASSES, SPEC, salient_classifier  # noqa: F401 (a fixture)

from pretrain.cli import main
from pretrain.data.augment.transforms import normalize_video
from pretrain.evaluate.explain import explain_clip
from pretrain.evaluate.faithfulness import box_mass_ratio
from pretrain.evaluate.inference import load_inference_model, read_clip
from pretrain.models.videomae import VideoMAE
from pretrain.weights import save_export


@pytest.fixture(scope="module")
def explained(salient_classifier):
    """The fine-tuned classifier, its test videos, and per method: (box mass ratio, deletion area,
    random deletion area) of every test video, plus the accuracy."""
    checkpoint, videos = salient_classifier
    with OneThread():
        loaded = load_inference_model(checkpoint)
        figures, correct = {"relevance": [], "rollout": [], "gradient": []}, 0
        for path, clip in videos:
            frames = read_clip(path, loaded.spec, loaded.stride)
            for method in figures:
                explanation = explain_clip(loaded, frames, method, class_name=CLASSES[clip.label])
                ratio = box_mass_ratio(explanation.token_scores, SPEC, clip.boxes[frames.frame_indices])
                figures[method].append(
                    (ratio, explanation.extra["deletion_auc"], explanation.extra["random_deletion_auc"])
                )
            with torch.no_grad():
                correct += int(loaded.model(normalize_video(frames.video[None])).argmax()) == clip.label
    return checkpoint, videos, figures, correct / len(videos)


def test_the_classifier_learned_the_task(explained):
    assert explained[3] == 1.0


@pytest.mark.parametrize("method", ["relevance", "gradient"])
def test_class_specific_saliency_lands_on_the_object_and_is_faithful(explained, method):
    """Attention relevance (the default) and Grad-CAM: 9.3x each on this classifier."""
    figures = np.array(explained[2][method])  # (videos, 3)
    ratio, salient_auc, random_auc = figures.mean(0)
    print(
        f"{method}: box mass / area share {ratio:.2f}, deletion AUC {salient_auc:.3f} vs random {random_auc:.3f}"
    )
    assert ratio >= 2.0
    assert salient_auc < random_auc - 0.1
    assert (figures[:, 1] < figures[:, 2]).mean() >= 0.8  # salient-first deletion wins on most videos


def test_attention_rollout_beats_uniform_and_random_deletion(explained):
    """Rollout is class-agnostic and, through the residual identity, close to uniform in a 2-block
    model: it does not reach the 2x bar here (1.29x), so only better-than-uniform is asserted."""
    figures = np.array(explained[2]["rollout"])
    ratio, salient_auc, random_auc = figures.mean(0)
    print(
        f"rollout: box mass / area share {ratio:.2f}, deletion AUC {salient_auc:.3f} vs random {random_auc:.3f}"
    )
    assert ratio > 1.0
    assert salient_auc < random_auc


def test_cli_writes_json_png_and_mp4(explained, tmp_path, capsys):
    checkpoint, videos, _, _ = explained
    with OneThread():
        assert (
            main(
                ["explain", str(checkpoint), str(videos[1][0]), "--method", "rollout", "--out", str(tmp_path)]
            )
            == 0
        )
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["class"] == CLASSES[videos[1][1].label] and printed["method"] == "rollout"
    saved = json.loads((tmp_path / "saliency.json").read_text())
    assert saved["grid"] == list(SPEC.grid) == [4, 4, 4]
    assert np.asarray(saved["token_scores"]).shape == (4, 4, 4)
    assert abs(np.sum(saved["token_scores"]) - 1) < 1e-5
    assert len(saved["frame_scores"]) == SPEC.num_frames and abs(sum(saved["frame_scores"]) - 1) < 1e-5
    assert 0.5 < saved["prob"] <= 1.0 and saved["deletion_auc"] > 0
    with Image.open(tmp_path / "saliency.png") as picture:
        assert picture.width > 400 and picture.height > 200
    with av.open(str(tmp_path / "saliency.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == SPEC.num_frames and frames[0].shape == (128, 128, 3)


def test_pretraining_checkpoint_shows_reconstruction_error(explained, tmp_path):
    torch.manual_seed(0)
    export = save_export(VideoMAE(SPEC).eval(), None, tmp_path / "mae")
    with OneThread():
        assert main(["explain", str(export), str(explained[1][0][0]), "--out", str(tmp_path / "out")]) == 0
    saved = json.loads((tmp_path / "out" / "saliency.json").read_text())
    assert saved["method"] == "reconstruction" and saved["class"] is None
    assert saved["reconstruction_error"] > 0 and abs(np.sum(saved["token_scores"]) - 1) < 1e-5
    errors = np.asarray(saved["token_errors"])  # the error itself, which the picture spreads
    assert errors.shape == (4, 4, 4) and errors.mean() == pytest.approx(saved["reconstruction_error"])
    assert (tmp_path / "out" / "saliency.png").stat().st_size > 0


def test_unknown_class_and_unreadable_video_are_one_line_errors(explained, tmp_path, capsys):
    checkpoint, videos, _, _ = explained
    assert (
        main(["explain", str(checkpoint), str(videos[0][0]), "--class", "Purple", "--out", str(tmp_path)])
        == 1
    )
    assert "unknown class 'Purple'" in capsys.readouterr().err
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    assert main(["explain", str(checkpoint), str(garbage), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "garbage.mp4: not a video" in err and "Traceback" not in err

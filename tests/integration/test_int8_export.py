"""`tubelet export --format onnx --quantize int8`: the int8 model of a fine-tuned tiny classifier agrees
with fp32 within a stated tolerance; predict, --stream and explain (occlusion) take the folder; the
export prints one line (the exporter's chatter goes to export.log); a missing extra is named."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from finetune_runs import OneThread
from pretrain_runs import run_cli
from salient_model import CLASSES, FRAMES, SIZE, salient_classifier  # noqa: F401 (a fixture)

from pretrain.cli import main
from pretrain.data.augment.transforms import normalize_video
from pretrain.data.generated.salient_object import salient_object_clip
from pretrain.data.video.write import write_video
from pretrain.errors import CheckpointError
from pretrain.evaluate.onnx_model import OnnxClassifier, load_onnx_classifier
from pretrain.weights import from_pretrained

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="the onnx extra is not installed",
)
HELD_OUT = 24
MAX_ABS_LOGIT_DIFF = 0.1
"""int8 vs fp32 logits of the tiny classifier (logits span about +-5; measured 0.02 over 48 clips)."""
MIN_TOP1_AGREEMENT = 1.0
"""Every one of the HELD_OUT clips keeps its fp32 top class (measured 48 of 48)."""


@pytest.fixture(scope="module")
def int8_export(salient_classifier, tmp_path_factory):  # noqa: F811
    """The export run as a user runs it, in a fresh process: (folder, its stdout + stderr lines)."""
    checkpoint, _ = salient_classifier
    out = tmp_path_factory.mktemp("int8") / "export"
    done = run_cli(
        "export",
        str(checkpoint),
        str(out),
        "--format",
        "onnx",
        "--quantize",
        "int8",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out, (done.stdout + done.stderr).splitlines()


def held_out_clips() -> tuple[torch.Tensor, torch.Tensor]:
    clips = [
        salient_object_clip(i % len(CLASSES), seed=20_000 + i, num_frames=FRAMES, size=(SIZE, SIZE))
        for i in range(HELD_OUT)
    ]
    frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 4, 1, 2, 3)  # (N, C, T, H, W)
    return normalize_video(frames), torch.tensor([c.label for c in clips])


def test_export_prints_one_line_and_logs_the_rest(int8_export):
    out, lines = int8_export
    assert len(lines) == 1, lines  # was 45 lines of exporter chatter before the useful one
    printed = json.loads(lines[0])
    assert printed["quantize"] == "int8" and printed["exported"] == str(out / "model.int8.onnx")
    assert printed["top1_agreement"] == 1.0 and printed["log"] == str(out / "export.log")
    log = (out / "export.log").read_text()
    assert "initializer" in log or "onnx" in log  # the chatter is kept, not lost
    runtime = json.loads((out / "runtime.json").read_text())
    assert runtime["model"] == "model.int8.onnx" and runtime["quantization"]["mode"] == "dynamic"
    assert runtime["class_names"] == CLASSES and runtime["arch"]["num_frames"] == FRAMES


def test_int8_agrees_with_fp32_within_tolerance(salient_classifier, int8_export):  # noqa: F811
    video, labels = held_out_clips()
    with torch.no_grad(), OneThread():
        fp32 = from_pretrained(salient_classifier[0])(video)  # (N, K)
        int8 = load_onnx_classifier(int8_export[0], threads=1)(video)
    assert int8.shape == fp32.shape and int8.dtype == torch.float32
    assert float((int8 - fp32).abs().max()) <= MAX_ABS_LOGIT_DIFF
    assert float((int8.argmax(-1) == fp32.argmax(-1)).float().mean()) >= MIN_TOP1_AGREEMENT
    assert float((int8.argmax(-1) == labels).float().mean()) >= 0.9  # and it still knows the classes


def test_predict_stream_and_explain_take_the_int8_export(salient_classifier, int8_export, tmp_path, capsys):  # noqa: F811
    checkpoint, videos = salient_classifier
    files = [str(path) for path, _ in videos[:3]]
    with OneThread():
        assert main(["predict", str(int8_export[0]), *files, "--topk", "1"]) == 0
        int8_lines = capsys.readouterr().out.splitlines()[:3]
        assert main(["predict", str(checkpoint), *files, "--topk", "1"]) == 0
        fp32_lines = capsys.readouterr().out.splitlines()[:3]
        assert [line.split()[1] for line in int8_lines] == [line.split()[1] for line in fp32_lines]
        long = salient_object_clip(0, seed=30_000, num_frames=3 * FRAMES, size=(SIZE, SIZE)).frames
        stream = write_video(tmp_path / "long.mp4", long, fps=8)  # 3 s: 4 one-second windows
        assert main(["predict", str(int8_export[0]), str(stream), "--stream", "--json"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[-1]["summary"]["windows"] == 4 and lines[-1]["summary"]["end"] == "end of input"
        assert all(line["topk"][0][0] == CLASSES[0] for line in lines[:-1])
        assert main(["explain", str(int8_export[0]), files[0], "--out", str(tmp_path / "ex")]) == 0
        saliency = json.loads((tmp_path / "ex" / "saliency.json").read_text())
        assert saliency["method"] == "occlusion" and saliency["class"] == CLASSES[videos[0][1].label]
        assert abs(sum(saliency["frame_scores"]) - 1) < 1e-5
        assert (
            main(["explain", str(int8_export[0]), files[0], "--out", str(tmp_path), "--method", "gradient"])
            == 1
        )
    assert "use --method occlusion with this ONNX export" in capsys.readouterr().err


def test_the_onnx_model_has_the_classifier_call_shape(int8_export):
    model = load_onnx_classifier(int8_export[0], threads=1)
    assert isinstance(model, OnnxClassifier) and model.source_format == "onnx-int8"
    assert model.class_names == CLASSES and model.num_classes == len(CLASSES)
    for batch in (1, 5):
        assert model(torch.zeros(batch, 3, FRAMES, SIZE, SIZE)).shape == (batch, len(CLASSES))
    with pytest.raises(
        CheckpointError, match="load an ONNX one with pretrain.evaluate.onnx_model.load_onnx_classifier"
    ):
        from_pretrained(int8_export[0])  # weights loaders build torch modules; they point the way


def test_a_missing_extra_names_it(salient_classifier, tmp_path, capsys, monkeypatch):  # noqa: F811
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a)
    )
    assert main(["export", str(salient_classifier[0]), str(tmp_path / "x"), "--format", "onnx"]) == 1
    assert capsys.readouterr().err.strip() == (
        "tubelet: error: ONNX export needs onnxscript: pip install 'tubelet[onnx]'"
    )
    assert not (tmp_path / "x").exists()  # refused before any work
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = {req.split(">")[0].split("=")[0] for req in pyproject["project"]["optional-dependencies"]["onnx"]}
    assert extra == {"onnx", "onnxscript", "onnxruntime"}


def test_bench_infer_puts_teacher_student_and_int8_side_by_side(salient_classifier, capsys):  # noqa: F811
    checkpoint, videos = salient_classifier
    held_out = [str(path) for path, _ in videos[:3]]
    argv = [
        "bench",
        "infer",
        "--teacher",
        str(checkpoint),
        "--student",
        str(checkpoint),
        "--held-out",
        *held_out,
        "--calibration",
        *[str(path) for path, _ in videos[3:7]],
    ]
    assert main([*argv, "--reps", "1", "--warmup", "0", "--batch", "2", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert list(rows) == [
        "teacher fp32",
        "student fp32",
        "student fp32 onnxruntime",
        "student int8 onnxruntime",
        "student int8 static onnxruntime",
    ]
    assert result["held_out_videos"] == 3 and result["labelled"] == 0  # files are not in class folders
    int8_rows = ("student int8 onnxruntime", "student int8 static onnxruntime")
    assert rows["student fp32"]["agreement"] == 1.0 and all(rows[r]["agreement"] == 1.0 for r in int8_rows)
    assert rows["student int8 static onnxruntime"]["runtime"] == "onnx int8 static"
    assert all(row["latency_ms"] > 0 and row["clips_per_s"] > 0 for row in rows.values())


def test_a_folder_whose_runtime_json_disagrees_with_its_graph_is_refused(int8_export, tmp_path):
    folder = tmp_path / "tampered"
    folder.mkdir()
    for file in int8_export[0].iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    runtime = json.loads((folder / "runtime.json").read_text())
    runtime["arch"]["num_frames"] = 2 * FRAMES
    runtime["class_names"] = [*runtime["class_names"], "extra"]
    (folder / "runtime.json").write_text(json.dumps(runtime))
    with pytest.raises(CheckpointError) as refused:
        load_onnx_classifier(folder, threads=1)
    assert str(refused.value) == (
        f"{folder / 'model.int8.onnx'} does not take what runtime.json declares: "
        f"video (C, T, H, W): graph [3, {FRAMES}, {SIZE}, {SIZE}] vs runtime.json [3, {2 * FRAMES}, {SIZE}, {SIZE}]; "
        f"logits (K): graph [{len(CLASSES)}] vs runtime.json [{len(CLASSES) + 1}]"
    )

"""`tubelet predict --stream`: sliding windows over a long generated video (right classes, each
frame decoded once), over a file that is still being written, and over truncated / garbage input
(clean end with a message, never a traceback); Ctrl-C still prints the summary."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from finetune_runs import OneThread
from salient_model import CLASSES, FRAMES, SIZE, salient_classifier  # noqa: F401 (a fixture)

from pretrain.cli import main
from pretrain.data.generated.salient_object import salient_object_clip
from pretrain.data.video.write import write_video
from pretrain.evaluate import predict_stream
from pretrain.evaluate.frame_source import FrameSource
from pretrain.evaluate.inference import load_inference_model

FPS, SEGMENT = 8, 24  # 3 s per object colour; a window (8 frames at stride 1) is 1 s
LABELS = (0, 1, 2, 0, 2, 1)


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    frames = np.concatenate(
        [
            salient_object_clip(label, seed=700 + i, num_frames=SEGMENT, size=(SIZE, SIZE)).frames
            for i, label in enumerate(LABELS)
        ]
    )  # (144, S, S, 3)
    return write_video(root / "long.mp4", frames, fps=FPS), write_video(
        root / "long.ts", frames, fps=FPS, codec="libx264"
    )


def run_json(argv, capsys) -> tuple[int, list[dict], dict, str]:
    with OneThread():
        code = main(argv + ["--json"])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return code, [line for line in lines if "summary" not in line], lines[-1]["summary"], captured.err


def test_windows_over_a_long_video_name_the_right_classes(salient_classifier, long_videos, capsys):
    checkpoint, _ = salient_classifier
    code, windows, summary, _ = run_json(
        ["predict", str(checkpoint), str(long_videos[0]), "--stream", "--topk", "2"], capsys
    )
    assert code == 0
    # Frames at 0, 1/8, ... 143/8 s; 1 s windows every 0.5 s; a window is scored once a frame at or past its end arrives.
    assert len(windows) == 34 and windows[1]["t0"] == 0.5 and windows[1]["t1"] == 1.5
    inside = [w for w in windows if int(w["t0"] // 3) == int((w["t1"] - 1e-6) // 3)]
    right = [w["topk"][0][0] == CLASSES[LABELS[int(w["t0"] // 3)]] for w in inside]
    assert len(inside) == 29 and np.mean(right) >= 0.9
    assert all(len(w["topk"]) == 2 and w["latency_ms"] > 0 for w in windows)
    assert summary["windows"] == 34 and summary["video_s"] == pytest.approx(143 / FPS)
    assert summary["realtime_factor"] > 0 and 0 < summary["latency_p50_ms"] <= summary["latency_p95_ms"]
    assert summary["end"] == "end of input"


def test_every_frame_is_decoded_once_and_shared_by_overlapping_windows(salient_classifier, long_videos):
    loaded = load_inference_model(salient_classifier[0])
    source = FrameSource(str(long_videos[0]), SIZE)
    stats = predict_stream.StreamStats()
    with OneThread():
        windows = list(predict_stream.stream_predictions(loaded, source, stats, window_s=2.0, stride_s=0.25))
    assert source.frames_decoded == len(LABELS) * SEGMENT  # 144, although 64 windows x 8 frames were scored
    assert len(windows) == 64 and stats.end_reason == "end of input"


def test_a_file_still_being_written_is_followed(salient_classifier, long_videos, tmp_path):
    """A writer appends the MPEG-TS bytes in chunks; the stream reads them as they arrive."""
    data = long_videos[1].read_bytes()
    growing = tmp_path / "live.ts"
    growing.write_bytes(b"")
    finished = {}

    chunk = len(data) // 20 + 1

    def write_slowly():
        with open(growing, "ab") as out:
            for start in range(0, len(data), chunk):
                out.write(data[start : start + chunk])
                out.flush()
                time.sleep(0.05)
        finished["at"] = time.perf_counter()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    loaded = load_inference_model(salient_classifier[0])
    stats, first = predict_stream.StreamStats(), None
    with OneThread():
        source = FrameSource(str(growing), SIZE, follow_s=1.0)
        for _ in predict_stream.stream_predictions(loaded, source, stats):
            first = first or time.perf_counter()
    writer.join()
    assert len(stats.latencies_ms) == 34 and source.frames_decoded == 144
    assert first < finished["at"]  # windows came out while the file was still growing


def test_truncated_input_ends_cleanly_with_a_message(salient_classifier, long_videos, tmp_path, capsys):
    truncated = tmp_path / "cut.ts"
    data = long_videos[1].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    code, windows, summary, err = run_json(
        ["predict", str(salient_classifier[0]), str(truncated), "--stream"], capsys
    )
    assert code == 0 and 5 < len(windows) < 34 and summary["windows"] == len(windows)
    assert "Traceback" not in err


def test_garbage_and_unfinished_mp4_are_one_line_errors(salient_classifier, long_videos, tmp_path, capsys):
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(b"\x1aE\xdf\xa3 broken" * 50)
    unfinished = tmp_path / "unfinished.mp4"  # the index (moov) of an MP4 is written last
    unfinished.write_bytes(long_videos[0].read_bytes()[:2000])
    for path in (garbage, unfinished):
        with OneThread():
            assert main(["predict", str(salient_classifier[0]), str(path), "--stream"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{path}: cannot open as a video" in err and "Traceback" not in err


def test_ctrl_c_still_prints_the_summary(salient_classifier, long_videos, capsys, monkeypatch):
    real_score, calls = predict_stream.score_clip, []

    def interrupted_after_three(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real_score(*args, **kwargs)

    monkeypatch.setattr(predict_stream, "score_clip", interrupted_after_three)
    code, windows, summary, err = run_json(
        ["predict", str(salient_classifier[0]), str(long_videos[0]), "--stream"], capsys
    )
    assert code == 0 and len(windows) == 3 and summary["windows"] == 3 and summary["end"] == "interrupted"
    assert "stream ended: interrupted" in err

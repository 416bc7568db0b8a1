"""`tubelet keyframes` and `shards inspect --contact-sheet`: keyframe counts equal the encoder's."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from PIL import Image

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.generated.long_video import write_scene_video
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.data.video.keyframes import every, iframes, shots

SHOTS = [30, 41, 29]  # 100 frames at 8 fps, cuts at frames 30 and 71


def _encoder_keyframes(path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(
            round(float(p.pts * stream.time_base) * 8)
            for p in container.demux(stream)
            if p.size and p.is_keyframe
        )


def _all_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyframes")
    fixed = write_scene_video(root / "fixed.mp4", SHOTS, fps=8, gop=16)  # x264, a keyframe every 16 frames
    natural = write_scene_video(root / "natural.avi", SHOTS, fps=8, gop=16)  # MPEG-4 adds I-frames at cuts
    return fixed, natural


def test_iframes_are_the_encoders_keyframes_decoded_alone(videos):
    fixed, natural = videos
    found = iframes(str(fixed.path))
    assert (
        [k.index for k in found] == list(range(0, 100, 16)) == _encoder_keyframes(fixed.path)
    )  # the known GOP
    assert {k.pict_type for k in found} == {"I"}
    assert (
        [k.index for k in iframes(str(natural.path))]
        == _encoder_keyframes(natural.path)
        == [0, 16, 30, 46, 62, 71, 87]
    )
    source = _all_frames(fixed.path)
    assert all(np.array_equal(k.image, source[k.index]) for k in found)


def test_every_and_scenes_pick_the_right_frames(videos):
    fixed, _ = videos
    source = _all_frames(fixed.path)
    sampled = every(str(fixed.path), 3.0)
    assert [(k.index, k.time) for k in sampled] == [(0, 0.0), (24, 3.0), (48, 6.0), (72, 9.0), (96, 12.0)]
    assert all(np.array_equal(k.image, source[k.index]) for k in sampled)
    assert [k.index for k in shots(str(fixed.path))] == [0, 30, 71]


def test_keyframes_command_writes_images_json_and_a_contact_sheet(videos, tmp_path, capsys):
    fixed, natural = videos
    assert main(["keyframes", str(fixed.path), str(natural.path), "--out", str(tmp_path)]) == 0
    assert "14 keyframes (iframes) of 2 video(s)" in capsys.readouterr().out
    records = json.loads((tmp_path / "keyframes.json").read_text())["keyframes"]
    assert [(r["source"], r["index"]) for r in records[:2]] == [(str(fixed.path), 0), (str(fixed.path), 16)]
    assert records[-1]["time"] == pytest.approx(87 / 8)
    assert all((tmp_path / r["image"]).is_file() for r in records)
    assert Image.open(tmp_path / "contact_sheet.png").size == (
        8 * 160,
        2 * (120 + 14),
    )  # 14 thumbnails, 8 a row
    assert main(["keyframes", str(fixed.path), "--out", str(tmp_path / "s"), "--scenes"]) == 0
    assert len(json.loads((tmp_path / "s" / "keyframes.json").read_text())["keyframes"]) == 3
    assert main(["keyframes", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "x")]) == 1
    assert "no such video" in capsys.readouterr().err


def test_shards_contact_sheet_has_a_row_per_class(tmp_path, capsys):
    write_folder_tree(tmp_path / "raw", classes=3, videos_per_class=3)
    build_shards(
        "folder", str(tmp_path / "raw"), str(tmp_path / "shards"), BuildOptions(labels_from_folders=True)
    )
    sheet = tmp_path / "sheet.png"
    command = ["shards", "inspect", str(tmp_path / "shards"), "--contact-sheet", str(sheet)]
    assert main([*command, "--per-class", "2"]) == 0
    assert f"contact sheet: 6 of 9 samples (at most 64) -> {sheet}" in capsys.readouterr().err
    width, height = Image.open(sheet).size
    assert width == 2 * 128 and height % 3 == 0 and height // 3 > 38  # 3 rows (classes) of 2, 3-line captions
    assert main(command) == 0  # every sample by default
    assert f"contact sheet: 9 of 9 samples (at most 64) -> {sheet}" in capsys.readouterr().err
    assert Image.open(sheet).size[0] == 3 * 128
    assert main([*command, "--max-samples", "4"]) == 0  # the stated cap
    assert f"contact sheet: 4 of 9 samples (at most 4) -> {sheet}" in capsys.readouterr().err


def test_contact_sheet_captions_say_key_class_and_span():
    from pretrain.data.shards.contact_sheet import Thumbnail

    image = np.zeros((8, 8, 3), np.uint8)
    thumb = Thumbnail("films_2ffilm_2emp4_s000012000-000024500", "(unlabeled)", 12.0, 24.5, image)
    assert thumb.caption == "…000012000-000024500\n(unlabeled)\n12.0-24.5 s"

"""`shards build --train-encoding`: frames stored at source fps / stride, recorded in the manifest;
`data.stride` keeps counting source frames; a clip from training-encoded shards is the same clip
as from whole-rate shards of the same source."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pretrain.config import ConfigError, load_config
from pretrain.data.augment.clips import eval_views
from pretrain.data.generated.synthetic import textured_pan_frames
from pretrain.data.shards import BuildOptions, ShardsError, build_shards, read_manifest
from pretrain.data.streams.pretrain_stream import clip_settings
from pretrain.data.streams.selection import check_splits
from pretrain.data.video.write import write_video

FRAMES = 61  # one 16-frame clip at stride 4 spans exactly 61 source frames: the centre view starts at 0
MIN_PSNR_DB = 26.0
"""Tolerance of the equality (measured 28.0-28.8 dB per frame): what x264 at crf 23 and two resize
chains (480x360 -> 342x256 -> 149x112 vs 480x360 -> 149x112) leave of a blurred textured pan; the
clip one stored frame (4 source frames) off scores about 19 dB (asserted below 21)."""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    frames = textured_pan_frames(FRAMES, (360, 480), speed=3.0)  # (T, H, W, 3)
    # Blurred: per-pixel noise would measure the resize kernels, not which frames were kept.
    smooth = np.stack([cv2.GaussianBlur(frame, (0, 0), 3) for frame in frames])
    write_video(raw / "pan.mp4", smooth, fps=24, gop=12)
    return raw


@pytest.fixture(scope="module")
def shard_pair(source, tmp_path_factory):
    whole, train = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("train")
    build_shards("folder", str(source), str(whole), BuildOptions())
    build_shards("folder", str(source), str(train), BuildOptions(train_encoding=True))
    return read_manifest(str(whole)), read_manifest(str(train))


def _config(shards: str, stride: int):
    return load_config(
        None, [f"data.shards={shards}", "data.split=all", f"data.stride={stride}", "model.num_frames=16"]
    )


def test_manifest_records_the_stored_stride_and_short_side(shard_pair):
    whole, train = shard_pair
    assert whole.stored_stride == 1
    assert train.stored_stride == 4
    assert train.build["stored"] == {"stride": 4, "short_side": 256}
    assert train.build["reencode"]["bframes"] == 0 and train.build["reencode"]["gop_frames"] == 8
    assert train.build["reencode"]["tune"] == "fastdecode"
    meta = _first_sample(train)["meta"]
    assert (meta["num_frames"], meta["fps"], meta["height"], meta["width"]) == (16, 6.0, 256, 342)
    assert meta["original"]["num_frames"] == FRAMES


def test_data_stride_must_be_a_multiple_of_the_stored_stride(shard_pair):
    whole, train = shard_pair
    for stride, step in ((4, 1), (8, 2)):
        config = _config(train.location, stride)
        assert check_splits(config, train, evaluating=False) is None
        assert clip_settings(config, train).stride == step
    assert clip_settings(_config(whole.location, 6), whole).stride == 6  # whole-rate: any stride
    with pytest.raises(ConfigError) as error:
        check_splits(_config(train.location, 6), train, evaluating=False)
    assert str(error.value).startswith(
        f"data.stride=6 is not a multiple of the stored stride 4 of {train.location}"
    )


def test_train_stride_options_are_checked():
    assert BuildOptions(train_encoding=True, train_stride=2).reencode_options().stride == 2
    with pytest.raises(ShardsError, match="train_stride=2 needs --train-encoding"):
        BuildOptions(train_stride=2)
    with pytest.raises(ShardsError, match="fps=5.0 and --train-encoding"):
        BuildOptions(train_encoding=True, fps=5.0)


def test_a_clip_from_training_shards_equals_the_whole_rate_clip(shard_pair):
    whole, train = shard_pair
    views = {}
    for name, manifest in (("whole", whole), ("train", train)):
        settings = dataclasses.replace(clip_settings(_config(manifest.location, 4), manifest), size=112)
        views[name] = eval_views(_first_sample(manifest), settings, 1, 1, multi_view=False)[0]["video"]
    assert views["whole"].shape == views["train"].shape == (3, 16, 112, 112)
    assert _psnr(views["whole"], views["train"]) >= MIN_PSNR_DB
    # The same comparison one stored frame off: the test can tell clips apart.
    assert _psnr(views["whole"][:, 1:], views["train"][:, :-1]) < MIN_PSNR_DB - 5


def _psnr(a, b) -> float:
    error = np.mean((a.numpy().astype(np.float64) - b.numpy().astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / error))


def _first_sample(manifest) -> dict:
    from pretrain.data.streams import pipeline_stages as stages

    url = f"{manifest.location}/{manifest.shards[0].name}"
    return next(
        stages.select(stages.read_shard(url, stages.Counters()), lambda meta: True, stages.Counters())
    )


def test_quickstart_pretrains_on_training_encoded_shards(tmp_path):
    from pretrain.quickstart.flow import QuickstartPlan, prepare_data

    plan = QuickstartPlan(unlabeled_videos=2, num_frames=24, train_encoding=True)
    labeled, unlabeled = prepare_data(tmp_path, plan)
    assert read_manifest(str(unlabeled)).stored_stride == 2  # the tiny recipe's data.stride
    assert read_manifest(str(labeled)).stored_stride == 1  # fine-tuning shards stay whole-rate

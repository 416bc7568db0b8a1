"""Shared test setup: markers, offline W&B, and no accidental GPU or network use."""

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def restore_environment():
    """In-process Lightning/DeepSpeed runs leave LOCAL_RANK, RANK, MASTER_PORT... in os.environ; a
    later `trainer.devices=2` child would then believe it is an already-launched rank and hang."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def train_encoded_shards(tmp_path_factory):
    """Shards of two textured 352x288 H.264 pans (72 frames at 24 fps) built with --train-encoding:
    18 stored frames each at short side 256."""
    from pretrain.data.generated.synthetic import textured_pan_frames
    from pretrain.data.shards import BuildOptions, build_shards
    from pretrain.data.video.write import write_video

    raw, out = tmp_path_factory.mktemp("train_raw"), tmp_path_factory.mktemp("train_shards")
    for index in range(2):
        write_video(raw / f"pan{index}.mp4", textured_pan_frames(72, (288, 352), seed=index), fps=24)
    build_shards("folder", str(raw), str(out), BuildOptions(train_encoding=True))
    return out

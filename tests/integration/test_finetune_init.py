"""`finetune.init` in every format: the same weights give the same logits whatever they came in.

Two families of the same weights:
- a randomly initialised transformers VideoMAEForPreTraining (`save_pretrained` folder), its
  Tubelet export (`tubelet convert`'s library function) and an original-VideoMAE `.pth`;
- a real pretraining stage checkpoint (one step of `tiny`), its `tubelet export`, and its
  Lightning `state.ckpt`.
"""

from __future__ import annotations

import pytest
import torch
from finetune_runs import InProcessRun, OneThread, classifier_logits, motion_shards

from pretrain.config import ConfigError, load_config
from pretrain.weights import convert_weights, load_weights

transformers = pytest.importorskip("transformers")

# The `tiny` size (width 64, depth 2, 2 heads, patch 16, tubelet 2) at 4 frames × 32 px: the
# classifier below takes 8 frames × 64 px, so the position table must be recomputed.
HF_TINY = dict(
    image_size=32,
    patch_size=16,
    num_frames=4,
    tubelet_size=2,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=256,
    decoder_hidden_size=32,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=128,
    use_mean_pooling=False,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with OneThread():
        yield


@pytest.fixture(scope="module")
def hf_family(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_family")
    torch.manual_seed(0)
    hf = transformers.VideoMAEForPreTraining(transformers.VideoMAEConfig(**HF_TINY))
    hf.save_pretrained(root / "hf")
    convert_weights(root / "hf", root / "export", to="tubelet")
    state, _ = load_weights(root / "hf")  # our naming is the original VideoMAE naming
    torch.save({"model": state}, root / "videomae_pretrain.pth")
    return {"hf": root / "hf", "export": root / "export", "pth": root / "videomae_pretrain.pth"}


@pytest.fixture(scope="module")
def stage_family(tmp_path_factory):
    from pretrain.train.entry import run_stage
    from pretrain.weights import export_checkpoint

    root = tmp_path_factory.mktemp("stage_family")
    shards = motion_shards(root, ("MoveUpSlow", "MoveDownSlow"), groups=(1, 8, 22))
    config = load_config(
        "pretrain/tiny",
        [
            f"data.shards={shards}",
            "trainer.max_steps=1",
            "trainer.checkpoint_every_steps=1",
            f"trainer.output_dir={root}",
            "trainer.run_name=pre",
            "logging.wandb=disabled",
            "logging.recon_every_steps=0",
            "data.num_workers=0",
        ],
        stage="pretrain",
    )
    with InProcessRun():
        result = run_stage(config)
    checkpoint = result.last_checkpoint
    export_checkpoint(checkpoint, root / "export")
    return {
        "checkpoint": checkpoint,
        "state": checkpoint / "state.ckpt",
        "run": result.run_dir,
        "export": root / "export",
    }


def test_every_format_of_the_same_weights_gives_identical_logits(hf_family):
    reference = classifier_logits(str(hf_family["hf"]))
    assert not torch.allclose(reference, classifier_logits("none"), atol=1e-2)  # the weights were used
    for name in ("export", "pth"):
        torch.testing.assert_close(classifier_logits(str(hf_family[name])), reference, rtol=0, atol=1e-5)


def test_stage_checkpoint_and_its_export_give_identical_logits(stage_family):
    reference = classifier_logits(str(stage_family["export"]))
    assert not torch.allclose(reference, classifier_logits("none"), atol=1e-2)
    for name in ("checkpoint", "state", "run"):
        torch.testing.assert_close(classifier_logits(str(stage_family[name])), reference, rtol=0, atol=1e-5)


def test_mismatched_patch_size_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    hf = transformers.VideoMAEForPreTraining(transformers.VideoMAEConfig(**dict(HF_TINY, patch_size=8)))
    hf.save_pretrained(tmp_path / "hf_patch8")
    with pytest.raises(ConfigError, match=r"finetune.init=.*patch 16.*patch_embed.proj.weight"):
        classifier_logits(str(tmp_path / "hf_patch8"))


def test_mismatched_width_and_missing_path_are_clear_errors(hf_family, tmp_path):
    with pytest.raises(ConfigError, match=r"finetune.init=.*model.size=s.*shape mismatches"):
        classifier_logits(str(hf_family["export"]), **{"model.size": "s"})
    with pytest.raises(ConfigError, match=r"finetune.init=.*no such file or folder"):
        classifier_logits(str(tmp_path / "missing"))

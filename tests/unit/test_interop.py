"""Numeric parity with Hugging Face transformers VideoMAE, and every weight format both ways.

Randomly initialized transformers models (no hub access), every parameter perturbed so that a
swapped or missing tensor shows up in the outputs.
"""

import pickle

import pytest
import torch
from safetensors.torch import load_file

from pretrain.cli import main
from pretrain.errors import CheckpointError
from pretrain.masking import batch_masks
from pretrain.models import VideoClassifier, VideoMAE
from pretrain.weights import (
    build_model,
    describe,
    detect_format,
    load_encoder,
    load_weights,
    save_export,
    save_hf,
)
from pretrain.weights.videomae_hf_naming import spec_from_hf_config

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    VideoMAEModel,
)
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table  # noqa: E402

SMALL = dict(image_size=32, patch_size=16, num_frames=4)
CONFIGS = {
    # hub-style pretraining config: final encoder norm, transformers' default eps 1e-12
    "tiny": dict(
        SMALL,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=128,
        use_mean_pooling=False,
    ),
    # size s widths and depths, transformers' defaults otherwise (mean pooling: no final encoder norm)
    "s": dict(
        SMALL,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        decoder_hidden_size=192,
        decoder_num_hidden_layers=4,
        decoder_num_attention_heads=3,
        decoder_intermediate_size=768,
        layer_norm_eps=1e-6,
    ),
    # no q/v bias, raw pixel targets
    "tiny-raw": dict(
        SMALL,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
        qv_bias=False,
        norm_pix_loss=False,
    ),
}
TOL = 1e-5  # absolute on losses; absolute + relative on logits, which reach about 5 here


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=generator))
    return model.eval()


def inputs(batch: int = 2):
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(batch, 3, 4, 32, 32, generator=generator)  # ours: (B, C, T, H, W)
    mask, _ = batch_masks(batch, (2, 2, 2), 0.5, generator=generator)
    return video, mask


def hf_pretraining(name: str) -> VideoMAEForPreTraining:
    torch.manual_seed(0)
    return perturbed(VideoMAEForPreTraining(VideoMAEConfig(**CONFIGS[name])))


def assert_same_pretraining(hf: VideoMAEForPreTraining, ours: VideoMAE) -> None:
    video, mask = inputs()
    with torch.no_grad():
        theirs = hf(video.permute(0, 2, 1, 3, 4), bool_masked_pos=mask)  # HF: (B, T, C, H, W)
        mine = ours.eval()(video, mask)
    assert abs(float(theirs.loss) - float(mine.loss)) < TOL
    assert torch.allclose(theirs.logits, mine.pred, atol=TOL, rtol=TOL)


def test_position_table_matches_videomae_exactly():
    from pretrain.models.blocks import sinusoid_position_table

    assert torch.equal(sinusoid_position_table(1568, 48), get_sinusoid_encoding_table(1568, 48)[0])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hf_pretraining_to_ours_same_loss(name, tmp_path):
    hf = hf_pretraining(name)
    hf.save_pretrained(tmp_path / "hf")
    state, config = load_weights(tmp_path / "hf")
    assert config["kind"] == "pretraining" and config["source_format"] == "hf"
    assert_same_pretraining(hf, build_model(state, config))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ours_pretraining_to_hf_same_loss(name, tmp_path):
    config = VideoMAEConfig(**CONFIGS[name])
    torch.manual_seed(0)
    ours = perturbed(
        VideoMAE(spec_from_hf_config(config.to_dict(), "pretraining"), norm_pix_loss=config.norm_pix_loss)
    )
    save_hf(*describe(ours), tmp_path / "hf")
    assert_same_pretraining(VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval(), ours)


@pytest.mark.parametrize("name", ["tiny", "s"])
def test_classifier_same_logits_both_directions(name, tmp_path):
    torch.manual_seed(0)
    config = VideoMAEConfig(
        **dict(CONFIGS[name], use_mean_pooling=True),  # VideoMAE fine-tuning
        id2label={i: f"action{i}" for i in range(5)},
    )
    hf = perturbed(VideoMAEForVideoClassification(config))
    hf.save_pretrained(tmp_path / "hf")
    state, config = load_weights(tmp_path / "hf")
    ours = build_model(state, config).eval()
    assert isinstance(ours, VideoClassifier) and config["num_classes"] == 5
    video, _ = inputs()
    with torch.no_grad():
        expected = hf(video.permute(0, 2, 1, 3, 4)).logits
        assert torch.allclose(ours(video), expected, atol=TOL, rtol=TOL)
        save_hf(state, config, tmp_path / "back")
        again = VideoMAEForVideoClassification.from_pretrained(tmp_path / "back").eval()
        assert torch.allclose(again(video.permute(0, 2, 1, 3, 4)).logits, expected, atol=TOL, rtol=TOL)
    assert again.config.id2label[4] == "action4"  # class names survive HF -> ours -> HF
    save_export(ours, None, tmp_path / "ours", class_names=config["class_names"])
    assert load_weights(tmp_path / "ours")[1]["class_names"] == [f"action{i}" for i in range(5)]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", ["tiny", "s"])
def test_round_trips_preserve_every_tensor(name, tmp_path):
    hf_pretraining(name).save_pretrained(tmp_path / "hf")
    state, config = load_weights(tmp_path / "hf")
    save_hf(state, config, tmp_path / "hf2")  # hf -> ours -> hf
    assert_same_tensors(
        load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "hf2" / "model.safetensors")
    )
    model = build_model(state, config)
    save_export(model, {"model": {"size": name}}, tmp_path / "ours")  # ours -> export -> ours
    exported, exported_config = load_weights(tmp_path / "ours")
    assert_same_tensors(exported, state)
    assert {k: v for k, v in exported_config.items() if k != "source_format"} == {
        k: v for k, v in config.items() if k != "source_format"
    }
    save_hf(exported, exported_config, tmp_path / "hf3")  # export -> hf -> ours
    assert_same_tensors(load_weights(tmp_path / "hf3")[0], state)


def test_hf_base_model_loads_as_encoder(tmp_path):
    torch.manual_seed(0)
    hf = perturbed(VideoMAEModel(VideoMAEConfig(**CONFIGS["tiny"])))
    hf.save_pretrained(tmp_path / "hf")
    state, config = load_weights(tmp_path / "hf")
    encoder = build_model(state, config)
    video, _ = inputs()
    from pretrain.models.patches import patchify

    with torch.no_grad():
        expected = hf(video.permute(0, 2, 1, 3, 4)).last_hidden_state
        assert torch.allclose(encoder(patchify(video, 2, 16)), expected, atol=TOL, rtol=TOL)
    save_hf(state, config, tmp_path / "back")
    assert_same_tensors(
        load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    )


def test_original_videomae_pth_files(tmp_path):
    hf_pretraining("s").save_pretrained(tmp_path / "hf")
    state, _ = load_weights(tmp_path / "hf")
    torch.save({"model": state, "epoch": 799}, tmp_path / "pretrain.pth")  # official pretraining layout
    loaded, config = load_weights(tmp_path / "pretrain.pth")
    assert_same_tensors(loaded, state)
    assert config["kind"] == "pretraining" and config["source_format"] == "videomae"
    assert (config["dim"], config["heads"], config["decoder_heads"], config["depth"]) == (384, 6, 3, 12)
    assert not config["encoder_norm"]
    # official fine-tuning layout: encoder parts at the top level, under "module"
    classifier = VideoClassifier(
        spec_from_hf_config(VideoMAEConfig(**CONFIGS["s"]).to_dict(), "classifier"), 4
    )
    finetune = {k.removeprefix("encoder."): v for k, v in classifier.state_dict().items()}
    torch.save({"module": finetune}, tmp_path / "finetune.pth")
    loaded, config = load_weights(tmp_path / "finetune.pth")
    assert config["kind"] == "classifier"
    assert_same_tensors(loaded, classifier.state_dict())
    # a Lightning-style checkpoint: state_dict with a "model." prefix beside non-tensor entries
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "last.ckpt"
    )
    assert_same_tensors(load_weights(tmp_path / "last.ckpt")[0], state)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_sources_are_refused_with_a_reason(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_weights(tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights not found"):
        load_weights(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        detect_format(tmp_path / "empty")
    torch.save({"model": {"linear.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not VideoMAE weights"):
        load_weights(tmp_path / "other.pth")


def test_load_encoder_for_finetuning_with_other_frame_count(tmp_path):
    hf_pretraining("tiny").save_pretrained(tmp_path / "hf")
    state, config = load_weights(tmp_path / "hf")
    spec = spec_from_hf_config(dict(CONFIGS["tiny"], num_frames=8, use_mean_pooling=True), "classifier")
    classifier = VideoClassifier(spec, num_classes=3)
    report = load_encoder(tmp_path / "hf", classifier)
    assert report["skipped"] == ["norm.bias", "norm.weight"] and report["source_format"] == "hf"
    for key, value in classifier.encoder.state_dict().items():
        assert torch.equal(value, state[f"encoder.{key}"]), key
    assert classifier.encoder.pos_embed.shape == (16, 64)  # recomputed for 8 frames, not interpolated
    wider = VideoClassifier(spec_from_hf_config(VideoMAEConfig(**CONFIGS["s"]).to_dict(), "classifier"), 3)
    with pytest.raises(ValueError, match=r"shape mismatches \['patch_embed.proj.weight: weights \(64,"):
        load_encoder(tmp_path / "hf", wider)


def test_convert_cli(tmp_path, capsys):
    hf_pretraining("tiny").save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours"), "--to", "tubelet"]) == 0
    assert "converted hf pretraining" in capsys.readouterr().out
    assert detect_format(tmp_path / "ours") == "tubelet"
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back"), "--to", "hf"]) == 0
    assert_same_tensors(
        load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    )
    VideoMAEForPreTraining.from_pretrained(tmp_path / "back")
    assert main(["convert", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 1
    assert "weights not found" in capsys.readouterr().err
    # an original .pth has no frame count or image size: the user records them
    torch.save({"model": load_weights(tmp_path / "hf")[0]}, tmp_path / "checkpoint-799.pth")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "checkpoint-799.pth"),
                str(tmp_path / "from_pth"),
                "--num-frames",
                "8",
                "--img-size",
                "64",
            ]
        )
        == 0
    )
    assert "converted videomae pretraining" in capsys.readouterr().out
    config = load_weights(tmp_path / "from_pth")[1]
    assert (config["num_frames"], config["img_size"], config["dim"]) == (8, 64, 64)

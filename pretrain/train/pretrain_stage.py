"""The pretraining stage: shards → VideoMAE (masked-video autoencoding), with reconstructions."""

from __future__ import annotations

from typing import Any

from pretrain.config import RunConfig
from pretrain.masking import num_hidden_tokens
from pretrain.models import build_pretraining_model
from pretrain.models.videomae import VideoMAE
from pretrain.train.callbacks import ReconstructionLogger
from pretrain.train.module import PretrainModule
from pretrain.train.resumable_stream import StreamData
from pretrain.train.stage import Stage


class PretrainData(StreamData):
    """The unlabeled, masked pretraining stream of this rank."""

    def build_loader(self, rank: int, world_size: int) -> Any:
        from pretrain.data.streams.pretrain_stream import build_pretrain_loader

        return build_pretrain_loader(self.config, rank, world_size)


def pretrain_stage(config: RunConfig) -> Stage:
    def build_model() -> VideoMAE:
        model = build_pretraining_model(config.model)
        if config.trainer.compile:
            model.compile()  # in place: parameter names (and checkpoints) stay the same
        return model

    return Stage(
        build_model=build_model,
        build_module=lambda model, steps_per_epoch: PretrainModule(config, model, steps_per_epoch),
        data=PretrainData(config),
        train_flops_per_clip=lambda model: model.flops_per_clip(*masked_token_counts(config, model)),
        callbacks=lambda model, run_dir: [ReconstructionLogger(run_dir, config.logging.recon_every_steps)],
    )


def masked_token_counts(config: RunConfig, model: VideoMAE) -> tuple[int, int]:
    """(encoded, reconstructed) tokens per clip at the run's mask ratios."""
    hidden = num_hidden_tokens(model.spec.grid, config.mask.ratio)
    decoder_ratio = config.mask.decoder_ratio
    targets = hidden if decoder_ratio <= 0 else int(round(hidden * (1 - decoder_ratio)))
    return model.spec.num_tokens - hidden, targets

"""Lightning saves the stream position in its checkpoint and restores it: a run resumed from a
mid-epoch checkpoint trains on exactly the batches an uninterrupted run trains on."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from stream_shards import build_ucf_shards, stream_config

from pretrain.data.streams.pretrain_stream import build_pretrain_loader


class KeyRecorder(pl.LightningModule):
    """Trains one weight and records what each step saw."""

    def __init__(self, loader) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.loader = loader
        self.seen: list[tuple[list[str], float]] = []

    def train_dataloader(self):
        return self.loader

    def training_step(self, batch, batch_idx):
        self.seen.append((list(batch["key"]), round(float(batch["video"].sum()), 3)))
        return (self.weight - batch["video"].float().mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(config, root, max_steps: int, ckpt_path=None) -> KeyRecorder:
    module = KeyRecorder(build_pretrain_loader(config, 0, 1))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=4, save_top_k=-1)],
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return module


@pytest.mark.slow
def test_lightning_resume_continues_the_stream(tmp_path):
    shards = build_ucf_shards(tmp_path / "data")
    config = stream_config(shards, "data.split=all", "data.batch_size=2", "data.num_workers=1")
    full = fit(config, tmp_path / "full", max_steps=10).seen  # epochs of 6 steps: crosses an epoch
    fit(config, tmp_path / "cut", max_steps=5)  # checkpoint at step 4, then stops mid-epoch
    checkpoint = tmp_path / "cut" / "ckpt" / "epoch=0-step=4.ckpt"
    saved = torch.load(checkpoint, weights_only=False)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert saved[0]["ranks"][0][0]["batches"] == 4
    resumed = fit(config, tmp_path / "cut", max_steps=10, ckpt_path=checkpoint).seen
    assert len(full) == 10 and resumed == full[4:]

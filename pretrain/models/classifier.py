"""Fine-tuning model: the encoder on all tokens, mean pooling, fc_norm, dropout, linear head
(VideoMAE fine-tuning / HF `VideoMAEForVideoClassification` with `use_mean_pooling`).

`VideoClassifier.encoder` has the same structure and parameter names as `VideoMAE.encoder`, so a
pretrained encoder loads by name (its final `norm` is not used: mean pooling + fc_norm replace it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import build_encoder
from pretrain.models.flops import classifier_forward_flops
from pretrain.models.patches import check_video, patchify

# Parameters that never get weight decay besides 1-D ones (norms, biases, q_bias/v_bias).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "time_embed", "temporal_cls_token")


class VideoClassifier(nn.Module):
    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int,
        head_dropout: float = 0.0,
        drop_path: float = 0.0,
        grad_checkpointing: bool = False,
        head_init_scale: float = 0.001,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.spec = spec
        self.num_classes = num_classes
        self.encoder = build_encoder(spec, drop_path, final_norm=False, grad_checkpointing=grad_checkpointing)
        self.fc_norm = nn.LayerNorm(spec.dim, eps=spec.head_norm_eps)
        self.head_dropout = nn.Dropout(head_dropout)
        self.head: nn.Module = nn.Linear(spec.dim, num_classes)
        self._init_weights(head_init_scale)

    def _init_weights(self, head_init_scale: float) -> None:
        """VideoMAE fine-tuning init: N(0, 0.02) linears, zero biases; the head scaled down."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        head = self.head
        if isinstance(head, nn.Linear):  # always, at construction (a linear probe's head comes later)
            with torch.no_grad():
                head.weight.mul_(head_init_scale)
                head.bias.mul_(head_init_scale)
        self.encoder.init_embeddings()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, C, T, H, W) normalized -> logits (B, num_classes)."""
        return self.head(self.head_dropout(self.features(video)))  # (B, num_classes)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, C, T, H, W) -> pooled features (B, D): the class token's output where the
        encoder has one (TimeSformer, ViViT), else the mean over tokens (VideoMAE)."""
        check_video(video, self.spec)
        tokens = self.encoder(
            patchify(video, self.spec.tubelet_size, self.spec.patch_size)
        )  # (B, [1 +] N, D)
        pooled = tokens[:, 0] if self.encoder.num_prefix_tokens else tokens.mean(dim=1)  # (B, D)
        return self.fc_norm(pooled)

    def flops_per_clip(self) -> int:
        """Forward FLOPs of one clip: every token through the encoder, then the head."""
        return classifier_forward_flops(self.spec, self.num_classes)

    def layer_id(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i (the encoder numbers them), the last for the
        norm and head."""
        if name.startswith("encoder."):
            return self.encoder.layer_id(name.removeprefix("encoder."))
        return self.encoder.num_layers - 1

    def param_groups(self, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
        """Layer-wise lr decay groups (BEiT/VideoMAE): a parameter in layer i gets
        `lr_scale = layer_decay ** (depth + 1 - i)`; norms, biases and position/cls tokens get no
        weight decay. The optimizer's scheduler must multiply each group's lr by `lr_scale`."""
        num_layers = self.encoder.num_layers
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES
            layer = self.layer_id(name)
            group = groups.setdefault(
                (layer, no_decay),
                {
                    "name": f"layer_{layer}_{'no_decay' if no_decay else 'decay'}",
                    "params": [],
                    "param_names": [],
                    "weight_decay": 0.0 if no_decay else weight_decay,
                    "lr_scale": layer_decay ** (num_layers - 1 - layer),
                },
            )
            group["params"].append(param)
            group["param_names"].append(name)
        return [groups[key] for key in sorted(groups)]


def make_linear_probe(model: VideoClassifier) -> VideoClassifier:
    """Freeze all weights and replace the head by BatchNorm1d(affine=False) + a fresh linear layer
    (the BatchNorm whitens the frozen features so one lr suits any pretrained encoder)."""
    for param in model.parameters():
        param.requires_grad_(False)
    linear = nn.Linear(model.spec.dim, model.num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    model.head = nn.Sequential(nn.BatchNorm1d(model.spec.dim, affine=False, eps=1e-6), linear)
    return model


def is_linear_probe(model: VideoClassifier) -> bool:
    return isinstance(model.head, nn.Sequential)

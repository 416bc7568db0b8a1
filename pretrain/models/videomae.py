"""VideoMAE pretraining model: encode visible tokens, decode, normalized-pixel loss.

Public API (other parts build on these names):

- `VideoMAE(spec, drop_path=0.0, norm_pix_loss=True, grad_checkpointing=False)`; build it from a
  `ModelConfig` with `pretrain.models.build_pretraining_model`.
- `VideoMAE.forward(video, mask, decoder_mask=None) -> VideoMAEOutput`
    video        float (B, C, T, H, W), normalized with `spec.pixel_mean` / `pixel_std` (ImageNet's)
    mask         bool (B, N), True = hidden from the encoder, same count in every row
    decoder_mask bool (B, N) or None, True = reconstructed by the decoder (VideoMAE V2)
  `VideoMAEOutput.loss` scalar; `.pred` (B, N_target, tubelet*p*p*3) predictions of the target
  tokens, pixels in VideoMAE's (tubelet, p, p, channel) order, as transformers' `logits`;
  `.target_mask` bool (B, N), which tokens were predicted and enter the loss
  (`mask`, or `mask & decoder_mask`). Row b's predictions are `pred[b, :target_mask[b].sum()]`, in
  ascending token order; rows with fewer targets than N_target are padded (padding is not in the loss).
- `VideoMAE.reconstruct(video, mask, output) -> (B, C, T, H, W)` in [0, 1]: visible tokens show the
  input, predicted tokens the prediction mapped back to pixels (with `norm_pix_loss`, using that
  cube's mean/std in the input video, as VideoMAE's visualization does), hidden-but-not-predicted 0.
- `masked_video(video, mask, spec) -> (B, C, T, H, W)` in [0, 1] with hidden tokens blacked out.

With a decoder_mask the decoder processes only the visible tokens plus the target tokens (hidden
AND kept), never the dropped ones: that is where VideoMAE V2's saving comes from. Attention then
runs among fewer tokens, so predictions differ from a full decoder's by design (V2 accepts this).

Targets follow VideoMAE and Hugging Face `VideoMAEForPreTraining` exactly: un-normalize ImageNet
mean/std back to [0, 1]; with `norm_pix_loss` each (tubelet, p, p) cube is normalized per channel by
its mean and unbiased std + 1e-6; MSE over target tokens only. Only target cubes are normalized,
and only visible tokens go through the patch embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import build_encoder
from pretrain.models.blocks import Block, run_blocks, sinusoid_position_table
from pretrain.models.flops import videomae_forward_flops
from pretrain.models.patches import channels_last, check_video, gather_tokens, patchify, unpatchify
from pretrain.pixels import CHANNELS

NORM_PIX_EPS = 1e-6


@dataclass
class VideoMAEOutput:
    loss: torch.Tensor  # scalar
    pred_channel_first: torch.Tensor  # (B, N_target, C*tpp), the model's own pixel order
    target_mask: torch.Tensor  # (B, N) bool
    decoder_tokens: int  # tokens per clip the decoder processed (visible + targets, padded)

    @property
    def pred(self) -> torch.Tensor:
        """(B, N_target, tpp*C) predictions in VideoMAE's (tubelet, p, p, C) pixel order (a copy,
        made only when asked for)."""
        return channels_last(self.pred_channel_first)


@dataclass
class TokenPlan:
    """Which tokens go where, as gather indices (computed once per forward)."""

    visible: torch.Tensor  # (B, N_visible) long, ascending
    target: torch.Tensor  # (B, N_target) long, targets first in ascending order, then padding
    target_valid: torch.Tensor | None  # (B, N_target) bool, None when no row is padded
    target_mask: torch.Tensor  # (B, N) bool


def plan_tokens(mask: torch.Tensor, decoder_mask: torch.Tensor | None) -> TokenPlan:
    """Gather indices for the encoder (visible tokens) and the decoder (target tokens)."""
    hidden_counts = mask.sum(1)
    num_visible = mask.shape[1] - int(hidden_counts[0])
    if bool((hidden_counts != hidden_counts[0]).any()):
        raise ValueError(
            f"mask must hide the same number of tokens in every row; got {hidden_counts.tolist()}"
        )
    visible = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, :num_visible]
    target_mask = mask if decoder_mask is None else mask & decoder_mask
    counts = target_mask.sum(1)  # (B,)
    num_target = int(counts.max())
    if num_target == 0:
        raise ValueError("no token is both hidden from the encoder and kept by the decoder_mask")
    target = torch.argsort((~target_mask).to(torch.uint8), dim=1, stable=True)[:, :num_target]
    valid = torch.arange(num_target, device=mask.device)[None] < counts[:, None]  # (B, N_target)
    return TokenPlan(visible, target, None if bool(valid.all()) else valid, target_mask)


class Decoder(nn.Module):
    channel_first_rows: torch.Tensor  # (C * tpp,) buffer

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(
                spec.decoder_dim, spec.decoder_heads, spec.decoder_mlp_dim, spec.qkv_bias, 0.0, spec.norm_eps
            )
            for _ in range(spec.decoder_depth)
        )
        self.norm = nn.LayerNorm(spec.decoder_dim, eps=spec.head_norm_eps)
        self.head = nn.Linear(spec.decoder_dim, spec.patch_dim)  # outputs in (tpp, C) order
        # Head rows reordered so predictions come out channel-first, like the targets.
        order = torch.arange(spec.patch_dim).view(-1, CHANNELS).t().flatten()  # (C * tpp,)
        self.register_buffer("channel_first_rows", order, persistent=False)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder features (B, n, Dd) -> channel-first pixel predictions (B, n, C*tpp)."""
        rows = self.channel_first_rows
        return F.linear(self.norm(x), self.head.weight[rows], self.head.bias[rows])


class VideoMAE(nn.Module):
    decoder_pos_embed: torch.Tensor  # (N, Dd) buffer
    pixel_mean: torch.Tensor  # (C,) buffer
    pixel_std: torch.Tensor  # (C,) buffer

    def __init__(
        self,
        spec: ArchSpec,
        drop_path: float = 0.0,
        norm_pix_loss: bool = True,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.spec = spec
        self.norm_pix_loss = norm_pix_loss
        self.grad_checkpointing = grad_checkpointing
        self.encoder = build_encoder(spec, drop_path, spec.encoder_norm, grad_checkpointing)
        self.encoder_to_decoder = nn.Linear(spec.dim, spec.decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.decoder_dim))
        self.register_buffer(
            "decoder_pos_embed", sinusoid_position_table(spec.num_tokens, spec.decoder_dim), persistent=False
        )
        self.decoder = Decoder(spec)
        self.register_buffer("pixel_mean", torch.tensor(spec.pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(spec.pixel_std), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """VideoMAE's init: xavier-uniform linears, zero biases, unit norms, N(0, 0.02) mask token."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.encoder.init_embeddings()

    def forward(
        self, video: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None
    ) -> VideoMAEOutput:
        self._check_inputs(video, mask, decoder_mask)
        patches = patchify(video, self.spec.tubelet_size, self.spec.patch_size)  # (B, N, C*tpp)
        plan = plan_tokens(mask, decoder_mask)
        latent = self.encode(patches, plan.visible)  # (B, N_visible, D)
        pred = self.decode(latent, plan)  # (B, N_target, C*tpp)
        target = self.targets(patches, plan.target)  # (B, N_target, C, tpp)
        loss = self.loss(pred, target, plan.target_valid)
        decoder_tokens = plan.visible.shape[1] + plan.target.shape[1]
        return VideoMAEOutput(loss, pred, plan.target_mask, decoder_tokens)

    def encode(self, patches: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """patches (B, N, P), visible (B, N_visible) -> latent (B, N_visible, D); a class token's
        output (TimeSformer, ViViT) is not decoded."""
        latent = self.encoder(gather_tokens(patches, visible), visible)  # (B, prefix + N_visible, D)
        return latent[:, self.encoder.num_prefix_tokens :]

    def decode(self, latent: torch.Tensor, plan: TokenPlan) -> torch.Tensor:
        """latent (B, N_visible, D) -> channel-first predictions (B, N_target, C*tpp) of the targets."""
        pos = self.decoder_pos_embed.to(latent.dtype)
        x_visible = self.encoder_to_decoder(latent) + pos[plan.visible]  # (B, N_visible, Dd)
        x_target = self.mask_token + pos[plan.target]  # (B, N_target, Dd)
        x = torch.cat([x_visible, x_target], dim=1)  # (B, N_visible + N_target, Dd)
        attn_mask = None
        if plan.target_valid is not None:  # padded target slots must not be attended to
            keep = torch.ones_like(plan.visible, dtype=torch.bool)
            attn_mask = torch.cat([keep, plan.target_valid], dim=1)[:, None, None, :]  # (B, 1, 1, L)
        # Only target outputs are used: the last block computes just those rows.
        x = run_blocks(
            self.decoder.blocks, x, attn_mask, self.grad_checkpointing, keep_from=plan.visible.shape[1]
        )  # (B, N_target, Dd)
        return self.decoder.predict(x)

    @torch.no_grad()
    def targets(self, patches: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Reconstruction targets of the target tokens, channel-first (B, N_target, C, t*p*p).

        VideoMAE un-normalizes to pixels x = v * std_c + mean_c, then normalizes each cube per
        channel: (x - mean(x)) / (std(x) + eps). mean_c cancels, so this is computed on v directly
        as (v - mean(v)) * std_c / (std_c * std(v) + eps): the same numbers, one pass fewer."""
        cubes = gather_tokens(patches, target).unflatten(-1, (CHANNELS, -1))  # (B, N_target, C, tpp)
        std_c = self.pixel_std.to(cubes.dtype)[:, None]  # (C, 1)
        if not self.norm_pix_loss:
            return cubes * std_c + self.pixel_mean.to(cubes.dtype)[:, None]
        var, mean = torch.var_mean(cubes, dim=-1, correction=1, keepdim=True)  # (B, N_target, C, 1)
        return (cubes - mean) * (std_c / (std_c * var.sqrt() + NORM_PIX_EPS))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """MSE between channel-first predictions (B, n, C*tpp) and targets (B, n, C, tpp) over
        target tokens; padded slots (valid False) are left out."""
        pred = pred.unflatten(-1, (CHANNELS, -1))  # (B, n, C, tpp)
        if valid is None:
            return F.mse_loss(pred, target)
        squared = (pred - target).pow(2).mean((-2, -1))  # (B, n)
        return squared[valid].mean()

    def _to_pixels(self, patches: torch.Tensor) -> torch.Tensor:
        """Normalized patches (B, n, C*tpp) -> pixels in [0, 1] as (B, n, C, tpp)."""
        cubes = patches.unflatten(-1, (CHANNELS, -1))
        return cubes * self.pixel_std.to(cubes.dtype)[:, None] + self.pixel_mean.to(cubes.dtype)[:, None]

    def _check_inputs(
        self, video: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None
    ) -> None:
        check_video(video, self.spec)
        expected = (video.shape[0], self.spec.num_tokens)
        for name, m in (("mask", mask), ("decoder_mask", decoder_mask)):
            if m is None:
                continue
            if tuple(m.shape) != expected or m.dtype != torch.bool:
                raise ValueError(
                    f"{name} must be bool with shape (B, N) = {expected}; got {m.dtype} {tuple(m.shape)}"
                )

    def flops_per_clip(self, visible_tokens: int, target_tokens: int) -> int:
        """Forward FLOPs of one clip with `visible_tokens` encoded and `target_tokens` reconstructed."""
        return videomae_forward_flops(self.spec, visible_tokens, target_tokens)

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor, mask: torch.Tensor, output: VideoMAEOutput) -> torch.Tensor:
        """Predictions mapped back into a (B, C, T, H, W) video in [0, 1].

        With `norm_pix_loss` a prediction is in per-cube normalized units; it is mapped back with
        the mean and std of that cube in the input video, as VideoMAE's visualization does (the
        picture then shows what the model predicts, at the true brightness and contrast)."""
        cubes = self._to_pixels(
            patchify(video, self.spec.tubelet_size, self.spec.patch_size)
        )  # (B, N, C, tpp)
        pred = output.pred_channel_first.to(cubes.dtype).unflatten(-1, (CHANNELS, -1))  # (B, n, C, tpp)
        if self.norm_pix_loss:
            order = torch.argsort((~output.target_mask).to(torch.uint8), dim=1, stable=True)
            true = gather_tokens(cubes.flatten(2), order[:, : pred.shape[1]]).unflatten(-1, (CHANNELS, -1))
            var, mean = torch.var_mean(true, dim=-1, correction=1, keepdim=True)
            pred = pred * (var.sqrt() + NORM_PIX_EPS) + mean
        out = cubes.masked_fill(mask[..., None, None], 0.0)
        for b in range(out.shape[0]):  # rows may have different target counts
            rows = output.target_mask[b].nonzero().squeeze(1)
            out[b, rows] = pred[b, : rows.numel()]
        return unpatchify(out.flatten(2), self.spec).clamp(0.0, 1.0)


def masked_video(video: torch.Tensor, mask: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """The input as the encoder sees it: (B, C, T, H, W) in [0, 1], hidden tokens set to 0."""
    patches = patchify(video, spec.tubelet_size, spec.patch_size).unflatten(-1, (CHANNELS, -1))
    mean = torch.tensor(spec.pixel_mean, dtype=video.dtype, device=video.device)[:, None]
    std = torch.tensor(spec.pixel_std, dtype=video.dtype, device=video.device)[:, None]
    pixels = (patches * std + mean).masked_fill(mask[..., None, None], 0.0)  # (B, N, C, tpp)
    return unpatchify(pixels.flatten(2), spec).clamp(0.0, 1.0)

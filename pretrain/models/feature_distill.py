"""MVD's student (Masked Video Distillation, Wang et al., CVPR 2023): a VideoMAE whose decoder
regresses a frozen teacher encoder's features of the masked tokens instead of their pixels.

- `FeatureStudent(spec, target_dim, drop_path=0.0, grad_checkpointing=False)`: the encoder, the
  encoder-to-decoder projection, mask token and decoder blocks of `VideoMAE` (same names, so the
  encoder loads anywhere a VideoMAE encoder does); only the decoder's head differs: a linear map to
  the teacher's width (`target_dim`).
- `forward(video, mask, decoder_mask, teacher_features) -> VideoMAEOutput`
    teacher_features (B, N, target_dim): the teacher's last-layer tokens of the whole clip
  `.loss` is SmoothL1 (beta 1, MVD's `--distill_loss_func SmoothL1`) between the predictions and the
  teacher's features of the target tokens; `.pred_channel_first` holds the predicted features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.models.arch import ArchSpec
from pretrain.models.patches import gather_tokens, patchify
from pretrain.models.videomae import Decoder, VideoMAE, VideoMAEOutput, plan_tokens


class FeatureDecoder(Decoder):
    """VideoMAE's decoder with a head sized to the teacher's features (no pixel reordering)."""

    def __init__(self, spec: ArchSpec, target_dim: int):
        super().__init__(spec)
        self.head = nn.Linear(spec.decoder_dim, target_dim)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder features (B, n, Dd) -> predicted teacher features (B, n, target_dim)."""
        return self.head(self.norm(x))


class FeatureStudent(VideoMAE):
    def __init__(
        self, spec: ArchSpec, target_dim: int, drop_path: float = 0.0, grad_checkpointing: bool = False
    ):
        super().__init__(spec, drop_path, norm_pix_loss=False, grad_checkpointing=grad_checkpointing)
        self.target_dim = target_dim
        self.decoder = FeatureDecoder(spec, target_dim)
        self._init_weights()  # the new head gets VideoMAE's init too

    def forward(  # type: ignore[override]
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        decoder_mask: torch.Tensor | None,
        teacher_features: torch.Tensor,
    ) -> VideoMAEOutput:
        self._check_inputs(video, mask, decoder_mask)
        expected = (video.shape[0], self.spec.num_tokens, self.target_dim)
        if tuple(teacher_features.shape) != expected:
            raise ValueError(
                f"teacher_features must be (B, N, D) = {expected}; got {tuple(teacher_features.shape)}"
            )
        patches = patchify(video, self.spec.tubelet_size, self.spec.patch_size)  # (B, N, C*tpp)
        plan = plan_tokens(mask, decoder_mask)
        latent = self.encode(patches, plan.visible)  # (B, N_visible, D)
        pred = self.decode(latent, plan)  # (B, N_target, target_dim)
        target = gather_tokens(teacher_features.to(pred.dtype), plan.target)  # (B, N_target, target_dim)
        loss = feature_loss(pred, target, plan.target_valid)
        return VideoMAEOutput(loss, pred, plan.target_mask, plan.visible.shape[1] + plan.target.shape[1])


def feature_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """SmoothL1 (beta 1) over the target tokens (B, n, D); padded slots (valid False) are left out."""
    if valid is None:
        return F.smooth_l1_loss(pred.float(), target.float())
    return F.smooth_l1_loss(pred[valid].float(), target[valid].float())

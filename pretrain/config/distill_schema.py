"""The `distill` section of the config: a frozen teacher, and how the student learns from it.

Two published ways, one stage (`tubelet distill`):

- `kind=logits` — VideoMAE V2 (Wang et al., CVPR 2023, Sec. 4.4) fine-tunes the student on labels while
  aligning its logits with a frozen fine-tuned teacher's by KL divergence, after Beyer et al.
  ("Knowledge distillation: a good teacher is patient and consistent", CVPR 2022: both models see
  the very same augmented image, mixup included). VideoMAE V2 never released that code nor its
  temperature/weight, so the defaults are the ones of the published soft-distillation code for
  ViTs, DeiT (Touvron et al., ICML 2021; facebookresearch/deit `--distillation-tau 1.0`,
  `--distillation-alpha 0.5`): loss = (1 - weight) * CE(labels) + weight * T^2 * KL(teacher_T || student_T),
  the T^2 factor from Hinton et al. (2015) keeping gradient sizes independent of T.
- `kind=features` — MVD (Wang et al., CVPR 2023; ruiwang2021/mvd `engine_for_pretraining.py`):
  masked pretraining whose decoder regresses the frozen teacher encoder's last-layer features of
  the masked tokens with SmoothL1 (beta 1, torch's default); decoder depth 2, tube mask 0.9, 400
  epochs, base lr 1.5e-4, min lr 1e-4, drop path 0.1 (its ViT-S-from-ViT-B script).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.errors import ConfigError

DISTILL_KINDS = ("logits", "features")


@dataclass
class DistillConfig:
    teacher: str = ""
    """stage=distill: the frozen teacher, anything `from_pretrained` reads (a Tubelet export, a stage
    checkpoint or run folder, a Hugging Face folder). logits: a fine-tuned classifier; features:
    any model with an encoder (its last-layer tokens are the targets)."""
    kind: str = "logits"
    """logits (VideoMAE V2: fine-tune on labels + KL to the teacher's softened logits) or features
    (MVD: masked pretraining, the decoder regresses the teacher's features of the masked tokens)."""
    temperature: float = 1.0
    """logits: softmax temperature T of both models' logits in the KL term (DeiT's default 1.0)."""
    weight: float = 0.5
    """logits: share of the KL term, loss = (1 - weight) CE + weight T^2 KL (DeiT's default 0.5)."""
    decoder_depth: int | None = None
    """features: blocks of the student's feature decoder; null takes the size's decoder depth (MVD: 2)."""
    norm_features: bool = False
    """features: layer-normalize the teacher's features before the loss (MVD's --norm_feature, off
    in its published scripts)."""

    def __post_init__(self) -> None:
        if self.kind not in DISTILL_KINDS:
            raise ConfigError(
                f"distill.kind={self.kind!r} is not allowed; choose one of {list(DISTILL_KINDS)}"
            )
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"distill.temperature={self.temperature} must be a finite number > 0")
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"distill.weight={self.weight} must be in [0, 1]")
        if self.decoder_depth is not None and self.decoder_depth < 1:
            raise ConfigError(f"distill.decoder_depth={self.decoder_depth} must be >= 1")

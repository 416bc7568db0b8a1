"""`ArchSpec`: everything that fixes the shapes of a model's weights and inputs (no torch needed).

Saved with every export, so a checkpoint says which backbone, size and pixel statistics it was
trained with. The backbone's own facts (encoder, tables, FLOPs, mask needs) live in
`pretrain.models.backbones`; the layers every backbone shares in `pretrain.models.blocks`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace
from typing import Any

from pretrain.errors import ConfigError
from pretrain.models.backbones import BACKBONES, DEFAULT_BACKBONE, get_backbone
from pretrain.models.sizes import SIZES
from pretrain.pixels import CHANNELS, IMAGENET_MEAN, IMAGENET_STD, token_grid

MLP_ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}  # name -> nn.GELU(approximate=...)
COUNTS = ("depth", "decoder_depth", "temporal_depth")
"""Block counts: whole numbers >= 0 (the other int fields are sizes, >= 1)."""


@dataclass(frozen=True)
class ArchSpec:
    """Everything that fixes the shapes of the weights and inputs; saved with every export."""

    img_size: int = 224
    num_frames: int = 16
    tubelet_size: int = 2
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    decoder_dim: int = 384
    decoder_depth: int = 4
    decoder_heads: int = 6
    decoder_mlp_dim: int = 1536
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    """LayerNorm eps inside blocks and of the encoder's final norm (HF `layer_norm_eps`)."""
    head_norm_eps: float = 1e-6
    """LayerNorm eps of the decoder's final norm and the classifier's fc_norm (HF fixes 1e-5)."""
    encoder_norm: bool = True
    """Final LayerNorm on the pretraining encoder's output (HF: `not use_mean_pooling`)."""
    backbone: str = DEFAULT_BACKBONE
    """Encoder family: vit (joint space-time attention), timesformer (divided), vivit (factorised
    encoder, ViViT Model 2); see `pretrain.models.backbones`."""
    temporal_depth: int = 0
    """vivit: blocks of the temporal transformer over the time slices' summaries."""
    class_token: bool = False
    """vit only: a class token and learned position embeddings (HF ViViT, Model 1) instead of the
    fixed sin-cos table; timesformer and vivit always have both, as their published weights do."""
    key_bias: bool = False
    """One fused qkv bias including the key (TimeSformer, ViViT) instead of VideoMAE's q/v biases."""
    mlp_act: str = "gelu"
    """MLP activation: gelu (exact) or gelu_tanh (HF ViViT's `gelu_fast`)."""
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean the input video is normalized with (travels with the weights)."""
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel std the input video is normalized with ([-1, 1] inputs: 0.5, 0.5, 0.5)."""

    def __post_init__(self) -> None:
        # a config.json or a flag may hold anything: one line now, no crash later
        problems = arch_problems(asdict(self))
        if problems:
            raise ConfigError(f"model architecture: {'; '.join(problems)}")
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))

    @classmethod
    def from_size(
        cls,
        size: str,
        img_size: int = 224,
        num_frames: int = 16,
        tubelet_size: int = 2,
        patch_size: int | None = None,
        backbone: str = DEFAULT_BACKBONE,
        temporal_depth: int | None = None,
        **overrides: Any,
    ) -> ArchSpec:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; expected one of {sorted(SIZES)}")
        s, described = SIZES[size], get_backbone(backbone)
        if described.temporal_transformer:
            overrides["temporal_depth"] = temporal_depth or s.temporal_depth
        overrides.setdefault("key_bias", described.key_bias)  # TimeSformer / ViViT: plain qkv bias
        return cls(
            backbone=backbone,
            img_size=img_size,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
            patch_size=patch_size or s.patch_size,
            dim=s.dim,
            depth=s.depth,
            heads=s.heads,
            mlp_dim=int(s.dim * s.mlp_ratio),
            decoder_dim=s.decoder_dim,
            decoder_depth=s.decoder_depth,
            decoder_heads=s.decoder_heads,
            decoder_mlp_dim=int(s.decoder_dim * s.mlp_ratio),
            **overrides,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ArchSpec:
        """Build from a dict that may hold other keys too (they are ignored)."""
        names = {f.name for f in fields(cls)}
        known: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names
        }
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def grid(self) -> tuple[int, int, int]:
        return token_grid(self.img_size, self.num_frames, self.patch_size, self.tubelet_size)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def spatial_tokens(self) -> int:
        """Token positions per time slice (H' * W')."""
        return math.prod(self.grid[1:])

    @property
    def gelu_approximate(self) -> str:
        """The MLP's `nn.GELU(approximate=...)` for `mlp_act`."""
        return MLP_ACTIVATIONS[self.mlp_act]

    @property
    def has_class_token(self) -> bool:
        """A class token (and learned positions): pooled by the classifier instead of the mean."""
        return get_backbone(self.backbone).class_token or self.class_token

    @property
    def patch_dim(self) -> int:
        """Pixels per token: tubelet * patch * patch * channels."""
        return self.tubelet_size * self.patch_size * self.patch_size * CHANNELS


def arch_problems(values: dict[str, Any]) -> list[str]:
    """What is wrong with these `ArchSpec` fields (the defaults fill the others): wrong types, sizes
    < 1, geometry that does not divide, non-finite or zero statistics. Readers of weights call it to
    refuse a file's architecture as that file's fault (CheckpointError) before building anything."""
    problems = []
    defaults = {field.name: field.default for field in fields(ArchSpec)}
    spec = SimpleNamespace(**{**defaults, **{k: v for k, v in values.items() if k in defaults}})
    for field in fields(ArchSpec):
        value, kind = getattr(spec, field.name), field.type
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{field.name}={value!r} must be a whole number")
        elif kind == "int" and value < (0 if field.name in COUNTS else 1):
            problems.append(f"{field.name}={value} must be >= {0 if field.name in COUNTS else 1}")
        elif kind in ("bool", "str") and type(value).__name__ != kind:
            problems.append(f"{field.name}={value!r} must be a {kind}")
        elif kind == "float" and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            problems.append(f"{field.name}={value!r} must be a finite number > 0")
    if problems:
        return problems
    if spec.mlp_act not in MLP_ACTIVATIONS:
        problems.append(f"unknown mlp_act {spec.mlp_act!r}; expected one of {sorted(MLP_ACTIVATIONS)}")
    if spec.backbone not in BACKBONES:
        problems.append(f"unknown backbone {spec.backbone!r}; expected one of {list(BACKBONES)}")
    elif get_backbone(spec.backbone).temporal_transformer and spec.temporal_depth < 1:
        problems.append(f"backbone {spec.backbone} needs temporal_depth >= 1, got {spec.temporal_depth}")
    for size, parts, names in (
        (spec.img_size, spec.patch_size, "img_size/patch_size"),
        (spec.num_frames, spec.tubelet_size, "num_frames/tubelet_size"),
        (spec.dim, spec.heads, "dim/heads"),
        (spec.decoder_dim, spec.decoder_heads, "decoder_dim/decoder_heads"),
    ):
        if size % parts:
            problems.append(f"{names}={size}/{parts} must divide evenly")
    for name in ("pixel_mean", "pixel_std"):
        stats = getattr(spec, name)
        ok = isinstance(stats, (list, tuple)) and len(stats) == CHANNELS
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stats
        )
        if not ok or (name == "pixel_std" and min(stats) <= 0):
            problems.append(
                f"{name}={stats!r} must be {CHANNELS} finite numbers"
                + (" > 0" if name == "pixel_std" else "")
            )
    return problems

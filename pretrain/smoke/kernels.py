"""CUDA-only checks of what makes training fast, shared by the smoke run and tests/gpu:

- attention of our shapes runs with SDPA restricted to the fused kernels (flash, memory-efficient),
  forward and backward: if only the math fallback applied, `sdpa_kernel` would raise;
- the AdamW the stages build (`pretrain.train.optim.build_adamw`) is the fused one on CUDA.
"""

from __future__ import annotations

import torch

FUSED_SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION")


def fused_sdpa_step(
    model: torch.nn.Module,
    inputs: dict,
    dtype: torch.dtype = torch.bfloat16,
    backends: tuple[str, ...] = FUSED_SDPA_BACKENDS,
) -> str | None:
    """Forward + backward of `model(**inputs).loss` with SDPA limited to `backends`; None when it
    ran, else the error (a RuntimeError 'No available kernel' means the math path was needed)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = [getattr(SDPBackend, name) for name in backends]
    try:
        with sdpa_kernel(chosen), torch.autocast("cuda", dtype=dtype):
            loss = model(**inputs).loss
        loss.backward()
    except RuntimeError as error:
        return str(error).splitlines()[0]
    return None


def videomae_inputs(spec, batch: int, mask_ratio: float, device: torch.device, seed: int = 0) -> dict:
    """Random video and tube masks of `spec`'s shapes on `device`."""
    from pretrain.masking import batch_masks

    generator = torch.Generator().manual_seed(seed)
    video = torch.randn(
        batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator
    )  # (B, C, T, H, W)
    mask, decoder_mask = batch_masks(batch, spec.grid, mask_ratio, 0.0, generator=generator)
    return {
        "video": video.to(device),
        "mask": mask.to(device),
        "decoder_mask": None if decoder_mask is None else decoder_mask.to(device),
    }


def stage_adamw_is_fused(model: torch.nn.Module, lr: float = 1e-4) -> bool:
    """The optimizer the stages build, over `model`'s (CUDA) parameters, is torch's fused AdamW."""
    from pretrain.train.optim import build_adamw, param_groups

    optimizer = build_adamw(param_groups(model.named_parameters(), 0.05), lr, (0.9, 0.95))
    return bool(optimizer.defaults.get("fused"))

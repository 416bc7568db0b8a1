"""Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021): a class-specific
explanation for every attention layout the encoders use, computed from outside the model.

Each attention sublayer's per-head map A is weighted by the explained logit's gradient with
respect to it, and only the positive part is kept, averaged over heads:
`Ā = mean_h (∂y/∂A ⊙ A)⁺`. The relevance starts as the identity and every sublayer adds what it
mixes in: `R ← R + Ā R`. The layouts, as in `rollout`:

- joint (ViT / VideoMAE, ViViT Model 1): one Ā over the whole sequence per block;
- divided (TimeSformer): per block the temporal maps (one per spatial position) then the spatial
  maps (one per time slice) embedded over the sequence; the class token's per-slice copies are
  summed (their outputs are averaged, so the gradient already carries the 1/T');
- factorised (ViViT Model 2): R per slice through the spatial blocks, R over the slice summaries
  through the temporal blocks.

Readout: a classifier that reads its class token takes R's class row. Mean pooling is read as one
more attention, from the pooled output to every output token, weighted by the same rule: output
token i weighs `(x_i · ∂y/∂x_i)⁺` (its gradient times itself), and the scores are those weights
times R. ViViT's factorised encoder pools tokens `spatial[t, j] + temporal[t]`: each part weighs
its own gradient times itself (`rollout.factorised_readout`).

The maps with gradients come from forward hooks that recompute each attention module's output
from explicit probabilities and return it in place of the fused SDPA output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from pretrain.evaluate.rollout import embed_divided, factorised_readout, head_attention


def weighted(attention: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
    """Per-head maps (..., H, L, L) and their gradients -> mean_h (grad ⊙ A)⁺ (..., L, L)."""
    if gradient is None:  # no path from this map to the logit
        return torch.zeros_like(attention).mean(-3)
    return (gradient * attention).clamp_min(0).mean(-3)


def token_weights(tokens: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Output tokens (..., D) and the logit's gradient at them -> (x · ∂y/∂x)⁺ (...)."""
    return (tokens * gradient).sum(-1).clamp_min(0)


def propagate(maps: list[torch.Tensor]) -> torch.Tensor:
    """Weighted maps (..., L, L) in forward order -> relevance R (..., L, L), from R = I."""
    relevance = torch.eye(maps[0].shape[-1]).expand_as(maps[0]).clone()
    for step in maps:
        relevance = relevance + step @ relevance
    return relevance


def joint_relevance(maps: list[torch.Tensor], readout: torch.Tensor, prefix: int) -> torch.Tensor:
    """Per-block weighted maps (L, L) and readout weights over the output tokens (L,) ->
    scores over the N patch tokens (N,)."""
    return (readout @ propagate(maps))[prefix:]


def divided_relevance(blocks: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Per-block (temporal (n, T', T'), spatial (T', 1 + n, 1 + n)) weighted maps -> (N,),
    read from the class token."""
    maps = []
    for temporal, spatial in blocks:
        maps.extend(embed_divided(temporal, spatial, class_self=0.0, class_share=1.0))  # time, then space
    readout = torch.zeros(maps[0].shape[-1])
    readout[0] = 1.0
    return joint_relevance(maps, readout, prefix=1)


def factorised_relevance(
    spatial: list[torch.Tensor],
    temporal: list[torch.Tensor],
    token_readout: torch.Tensor,
    slice_readout: torch.Tensor,
) -> torch.Tensor:
    """Spatial blocks' weighted maps (T', 1 + n, 1 + n), temporal blocks' (1 + T', 1 + T'), and
    readout weights of each output token's spatial part (T', n) and each slice's temporal part
    (T',) -> (T' * n,) in (T', H', W') order."""
    return factorised_readout(propagate(spatial), propagate(temporal), token_readout, slice_readout)


@contextmanager
def differentiable_attention(encoder: nn.Module) -> Iterator[dict[nn.Module, torch.Tensor]]:
    """While active, every attention module of `encoder` computes its output from explicit
    probabilities (G, H, L, L), kept (with their gradient after backward) per module; and the
    outputs of the last blocks and the spatial norm are kept with theirs (the readout's tokens)."""
    kept: dict[nn.Module, torch.Tensor] = {}

    def explicit(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        attn_mask, query_from = (list(args[1:]) + [None, 0])[:2]
        if attn_mask is not None or query_from:
            raise ValueError("attention relevance explains full self-attention only (no mask, all queries)")
        probs, values = head_attention(module, args[0])  # (G, H, L, L), (G, H, L, hd)
        keep(module, probs)
        g, heads, length, head_dim = values.shape
        return module.proj((probs @ values).transpose(1, 2).reshape(g, length, heads * head_dim))

    def keep(module: nn.Module, tensor: torch.Tensor) -> None:
        if tensor.requires_grad:
            tensor.retain_grad()
        kept[module] = tensor

    modules = [m for m in encoder.modules() if hasattr(m, "qkv") and hasattr(m, "heads")]
    handles = [m.register_forward_hook(explicit) for m in modules]
    outputs = [encoder.blocks[-1], *[getattr(encoder, name, None) for name in ("spatial_norm",)]]
    if hasattr(encoder, "temporal_blocks"):
        outputs.append(encoder.temporal_blocks[-1])
    handles += [m.register_forward_hook(lambda m, a, out: keep(m, out)) for m in outputs if m is not None]
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()


def relevance_scores(
    model: nn.Module, video: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """video (1, C, T, H, W) normalized -> (logits (K,), scores over the N patch tokens (N,),
    explained class); `target` None explains the top class."""
    encoder = model.encoder
    with torch.enable_grad(), differentiable_attention(encoder) as kept:
        logits = model(video.detach())[0].float()  # (K,)
        target = int(logits.argmax()) if target is None else target
        logits[target].backward()
    maps = {m: weighted(p.detach().float(), p.grad) for m, p in kept.items() if hasattr(m, "qkv")}
    readout = {m: token_weights(x.detach().float(), x.grad) for m, x in kept.items() if x.grad is not None}
    model.zero_grad(set_to_none=True)
    if hasattr(encoder, "temporal_blocks"):
        scores = factorised_relevance(
            [maps[b.attn] for b in encoder.blocks],
            [maps[b.attn][0] for b in encoder.temporal_blocks],
            readout[encoder.spatial_norm][:, 1:],  # (T', n): the tokens' spatial parts
            readout[encoder.temporal_blocks[-1]][0, 1:],  # (T',): the slices' temporal parts
        )
    elif hasattr(encoder.blocks[0], "temporal_attn"):
        scores = divided_relevance([(maps[b.temporal_attn], maps[b.attn]) for b in encoder.blocks])
    else:
        prefix = getattr(encoder, "num_prefix_tokens", 0)
        weights = readout[encoder.blocks[-1]][0]  # (L,)
        if prefix:  # the class token is read, the others only through attention
            weights = torch.zeros_like(weights).index_fill_(0, torch.tensor([0]), 1.0)
        scores = joint_relevance([maps[b.attn][0] for b in encoder.blocks], weights, prefix)
    return logits.detach(), scores, target

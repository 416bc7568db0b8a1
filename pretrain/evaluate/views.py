"""Per-view scores of a model over multi-view eval batches, gathered from every rank exactly once.

The eval loader gives each test video to exactly one rank as one row `(V, C, T, H, W)` of all its
views. Every rank scores its rows; `gather_views` concatenates the ranks' views on every rank and
refuses a video that two ranks scored (that would count it twice in the metrics).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from pretrain.data.augment.transforms import normalize_video

Scorer = Callable[[torch.Tensor], torch.Tensor]
"""(N, C, T, H, W) clips -> (N, K) logits."""


@dataclass
class ViewLogits:
    """One row per view: the video key, the logits and the label of that view."""

    keys: list[str] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)  # each (M_i, K)
    labels: list[torch.Tensor] = field(default_factory=list)  # each (M_i,)

    def add(self, keys: list[str], logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.keys.extend(keys)
        self.logits.append(logits.detach().float().cpu())
        self.labels.append(labels.detach().long().cpu())

    def extend(self, other: ViewLogits) -> None:
        self.keys.extend(other.keys)
        self.logits.extend(other.logits)
        self.labels.extend(other.labels)

    def stacked(self) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """keys (M,), logits (M, K), labels (M,)."""
        if not self.keys:
            raise ValueError("no test videos were scored: is the eval split empty?")
        return self.keys, torch.cat(self.logits), torch.cat(self.labels)

    @property
    def num_videos(self) -> int:
        return len(set(self.keys))


def shuffle_time(clips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Permute the frames of every clip `(N, C, T, H, W)` (one random order per clip)."""
    n, _, t = clips.shape[:3]
    order = torch.stack([torch.randperm(t, generator=generator) for _ in range(n)])  # (N, T)
    index = order[:, None, :, None, None].expand_as(clips).to(clips.device)
    return torch.gather(clips, 2, index)


def score_batch(
    scorer: Scorer,
    batch: dict,
    shuffle_frames: bool = False,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
    pixel_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> ViewLogits:
    """Score every view of a multi-view batch: video (B, V, C, T, H, W), label (B,), key [B].
    `chunk` bounds the clips per forward (B × V views of a large model need not fit at once);
    uint8 pixels are normalized with `pixel_stats` (the model's mean, std; ImageNet's if None)."""
    video = batch["video"]
    if video.ndim != 6:
        raise ValueError(f"multi-view eval batches need video (B, V, C, T, H, W); got {tuple(video.shape)}")
    num_views = video.shape[1]
    clips = video.flatten(0, 1)  # (B*V, C, T, H, W)
    if clips.dtype == torch.uint8:  # pixels shipped for normalization on the device
        clips = (
            normalize_video(clips)
            if pixel_stats is None
            else normalize_video(clips, mean=pixel_stats[0], std=pixel_stats[1])
        )
    if shuffle_frames:
        clips = shuffle_time(clips, generator)
    logits = torch.cat([scorer(part) for part in clips.split(chunk or clips.shape[0])])  # (B*V, K)
    keys = [key for key in batch["key"] for _ in range(num_views)]
    views = ViewLogits()
    views.add(keys, logits, batch["label"].repeat_interleave(num_views))
    return views


def gather_views(local: ViewLogits) -> ViewLogits:
    """All ranks' views on every rank (a no-op without a process group); a video scored on two
    ranks is an error, because the eval stream must hand each video to exactly one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts: list[ViewLogits | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    owners: Counter = Counter()
    merged = ViewLogits()
    for part in parts:
        owners.update(set(part.keys))
        merged.extend(part)
    twice = sorted(key for key, count in owners.items() if count > 1)
    if twice:
        raise RuntimeError(
            f"{len(twice)} test videos were scored on more than one rank "
            f"(e.g. {twice[:3]}); the eval stream must give each video to one rank"
        )
    return merged

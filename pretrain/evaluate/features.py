"""`tubelet features`: the encoder's pooled features of every sample of a shard set, computed on the
same views as evaluation (`data.test_clips` windows x `data.test_crops` crops, one decode each).

Per sample: `view_features` `(V, D)`, the pooled feature of each view exactly as the classifier's
head sees it (`fc_norm(mean over tokens of encoder(video))`), and `features` `(D,)`, their mean
over views; optionally `tokens` `(V, N, D)` (large: N = 1568 for 16 x 224^2 at ViT-B, 4.8 MB a
view in float32). Models come from `pretrain.weights.from_pretrained`: fine-tuned classifiers are
used as they are; any other source (a pretraining export or stage checkpoint, Hugging Face folder,
original .pth) has its encoder loaded into the classifier of the recipe, whose untrained fc_norm is
the identity LayerNorm (what `finetune.mode=linear_probe` sees).

The unit of work is one input shard: `features-<shard>.safetensors` (rows in shard order) and its
part index `_parts/<shard>.json`, written atomically, the part last. A rerun keeps every unit whose
part carries the same fingerprint (checkpoint, recipe views, split, tokens, shard sha256), so a
killed run resumes without repeating or losing a sample; `index.jsonl` (key, path, start, end,
label, class, file, row) and `features.json` are written when every unit is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from pretrain.atomic import PARTIAL_SUFFIX, replaced_atomically
from pretrain.config import ModelConfig, RunConfig
from pretrain.data.augment.transforms import normalize_video
from pretrain.data.shards.output_lock import output_lock
from pretrain.errors import CheckpointError, DataError
from pretrain.models.patches import patchify
from pretrain.runtime.eta import WorkProgress

log = logging.getLogger(__name__)

PARTS = "_parts"
INDEX_NAME = "index.jsonl"
SUMMARY_NAME = "features.json"


@dataclass(frozen=True)
class FeatureJob:
    ckpt: str
    shards: str
    out: str
    config: RunConfig
    split: str = "all"
    tokens: bool = False


@dataclass(frozen=True)
class FeatureUnit:
    shard: str
    count: int
    fingerprint: str

    @property
    def stem(self) -> str:
        return self.shard.rsplit(".", 1)[0]

    @property
    def file(self) -> str:
        return f"features-{self.stem}.safetensors"

    @property
    def part(self) -> str:
        return f"{PARTS}/{self.stem}.json"


def load_feature_model(ckpt: str, config: RunConfig) -> tuple[nn.Module, ModelConfig]:
    """The model whose features are extracted and the model config of its views.

    A fine-tuned classifier is used as it is, with its own input shape (frames, image size). Any
    other source has its encoder loaded into the recipe's classifier, as `finetune.init` would do."""
    import dataclasses

    from pretrain.models import build_finetune_model
    from pretrain.models.classifier import VideoClassifier
    from pretrain.weights import from_pretrained, load_encoder

    if not Path(ckpt).exists():
        raise CheckpointError(f"checkpoint not found: {ckpt}")
    model = from_pretrained(ckpt)
    if isinstance(model, VideoClassifier):
        own = model.run_config.model if model.run_config else config.model
        spec = model.spec  # the weights decide the input shape, whatever the recipe says
        return model, dataclasses.replace(
            own,
            img_size=spec.img_size,
            num_frames=spec.num_frames,
            tubelet_size=spec.tubelet_size,
            patch_size=spec.patch_size,
        )
    log.info(
        "%s holds a %s, not a classifier: its encoder goes into the recipe's classifier",
        ckpt,
        type(model).__name__,
    )
    classifier = build_finetune_model(config, num_classes=1)
    load_encoder(ckpt, classifier)
    return classifier.eval(), config.model


@torch.inference_mode()
def pooled_features(
    model: nn.Module, clips: torch.Tensor, tokens: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """clips (N, C, T, H, W) normalized -> pooled (N, D) [, tokens (N, n, D)]: the classifier's
    forward up to its head."""
    spec = model.spec
    hidden = model.encoder(patchify(clips, spec.tubelet_size, spec.patch_size))  # (N, n, D)
    pooled = model.fc_norm(hidden.mean(dim=1))  # (N, D)
    return pooled.float(), (hidden.float() if tokens else None)


def plan_units(job: FeatureJob) -> list[FeatureUnit]:
    from pretrain.data.shards import read_manifest
    from pretrain.data.streams.selection import members_per_shard, resolve_selection

    manifest = read_manifest(job.shards)
    selection = resolve_selection(job.split, manifest, job.config.finetune.split)
    counts = {url.rsplit("/", 1)[-1]: count for url, count in members_per_shard(manifest, selection)}
    base = _job_fingerprint(job)
    return [
        FeatureUnit(
            shard.name, counts[shard.name], hashlib.sha256(f"{base}:{shard.sha256}".encode()).hexdigest()
        )
        for shard in manifest.shards
        if shard.name in counts
    ]


def _job_fingerprint(job: FeatureJob) -> str:
    ckpt = Path(job.ckpt)
    stamp = [
        (str(p.relative_to(ckpt)) if p != ckpt else "", p.stat().st_size, p.stat().st_mtime_ns)
        for p in ([ckpt] if ckpt.is_file() else sorted(ckpt.rglob("*")))
        if p.is_file()
    ]
    data = job.config.data
    views = [data.stride, data.test_clips, data.test_crops]
    return hashlib.sha256(
        json.dumps(
            [str(ckpt.resolve()), stamp, views, job.split, job.tokens, asdict(job.config.model)], default=str
        ).encode()
    ).hexdigest()


def unit_done(out: Path, unit: FeatureUnit) -> dict | None:
    try:
        part = json.loads((out / unit.part).read_text())
    except (OSError, ValueError):
        return None
    if part.get("fingerprint") != unit.fingerprint or not (out / unit.file).is_file() or part.get("damage"):
        return None  # a damaged shard is read again: it may have been repaired
    return part


def _atomic(path: Path, write) -> None:
    with replaced_atomically(path) as (partial,):
        write(partial)


_MODELS: dict[tuple[str, str], tuple[nn.Module, ModelConfig]] = {}


def _model_on(job: FeatureJob, device: str) -> tuple[nn.Module, ModelConfig]:
    """Loaded once per process and device (a worker handles many units)."""
    if (job.ckpt, device) not in _MODELS:
        model, config = load_feature_model(job.ckpt, job.config)
        _MODELS[(job.ckpt, device)] = (model.to(device), config)
    return _MODELS[(job.ckpt, device)]


def _sample_rows(job: FeatureJob, shard: str) -> dict[str, dict]:
    """key -> index fields, from the samples' own json."""
    from pretrain.data.shards import read_manifest
    from pretrain.data.shards.inspection import iter_sample_json

    rows = {}
    try:  # a damaged shard: the samples before the damage (the part records the damage)
        for name, meta in iter_sample_json(read_manifest(job.shards), shard):
            rows[name[: -len(".json")]] = {
                "path": meta.get("path"),
                "start": meta.get("start", 0.0),
                "end": meta.get("end", meta.get("duration")),
                "label": meta.get("label"),
                "class": meta.get("class"),
                "parent": meta.get("parent"),
            }
    except (OSError, EOFError, tarfile.TarError, ValueError) as error:
        log.debug("%s: sample metadata unreadable after %d samples (%s)", shard, len(rows), error)
    return rows


def _read_views(
    model: nn.Module,
    config: RunConfig,
    job: FeatureJob,
    unit: FeatureUnit,
    device: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor], str | None]:
    """(keys, pooled views, tokens) of every sample the shard yields, and why it stopped early
    (a missing or truncated shard), or None; `progress` hears of every batch's samples."""
    from pretrain.data.streams.eval_stream import build_eval_loader

    keys, views, tokens = [], [], []
    try:
        for batch in build_eval_loader(
            config, rank=0, world_size=1, multi_view=True, split=job.split, shard=unit.shard
        ):
            video = batch["video"]  # (B, V, C, T, H, W) uint8
            clips = normalize_video(video.flatten(0, 1).to(device))  # (B*V, C, T, H, W)
            pooled, hidden = pooled_features(model, clips, job.tokens)
            views.append(pooled.cpu().unflatten(0, video.shape[:2]))  # (B, V, D)
            if hidden is not None:
                tokens.append(hidden.cpu().unflatten(0, video.shape[:2]))  # (B, V, n, D)
            keys.extend(batch["key"])
            if progress is not None:
                progress(len(batch["key"]))
    except (DataError, OSError, EOFError, tarfile.TarError) as error:
        return keys, views, tokens, f"unreadable after {len(keys)} samples ({error})"
    return keys, views, tokens, None


def extract_unit(
    unit: FeatureUnit, job: FeatureJob, device: str = "cpu", progress: Callable[[int], None] | None = None
) -> dict:
    """Features of one input shard -> its safetensors file and part index (returned). Samples the
    shard does not yield (damage) are counted in the part with the reason."""
    import dataclasses

    from pretrain.weights.export import save_tensors

    model, model_config = _model_on(job, device)
    config = dataclasses.replace(
        job.config,
        model=model_config,
        data=dataclasses.replace(job.config.data, shards=job.shards, num_workers=0),
    )
    keys, views, tokens, damage = _read_views(model, config, job, unit, device, progress)
    skipped = unit.count - len(keys)
    if skipped > 0 and damage is None:
        damage = f"{skipped} of {unit.count} samples could not be read"
    num_views = config.data.test_clips * config.data.test_crops
    view_features = torch.cat(views) if views else torch.zeros(0, num_views, model.spec.dim)  # (M, V, D)
    tensors = {
        "features": view_features.mean(dim=1).contiguous(),
        "view_features": view_features.contiguous(),
    }
    if tokens:
        tensors["tokens"] = torch.cat(tokens).contiguous()
    out = Path(job.out)
    _atomic(out / unit.file, lambda path: save_tensors(tensors, path))  # 0644, disk full is one line
    meta = _sample_rows(job, unit.shard)
    rows = [{"key": key, **meta.get(key, {}), "file": unit.file, "row": row} for row, key in enumerate(keys)]
    part = {
        "fingerprint": unit.fingerprint,
        "shard": unit.shard,
        "rows": rows,
        "dim": int(view_features.shape[-1]),
        "views": int(view_features.shape[1]),
        "skipped": max(skipped, 0),
        "damage": damage,
    }
    _atomic(out / unit.part, lambda path: path.write_text(json.dumps(part)))
    return part


def extract_unit_task(unit: FeatureUnit, job: FeatureJob) -> dict:
    """A Ray task / worker process: the first GPU it sees, else the CPU."""
    return extract_unit(unit, job, "cuda" if torch.cuda.is_available() else "cpu")


def _device_worker(share: tuple[str, list[FeatureUnit]], job: FeatureJob) -> list[dict]:
    """One device's share of the units, in a worker process."""
    device, units = share
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return [extract_unit(unit, job, device) for unit in units]


def local_devices() -> list[str]:
    """Every local GPU, else the CPU."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


TaskRunner = Callable[[Callable, list, FeatureJob], Iterator[dict]]
"""Runs `task(unit, job)` for every unit elsewhere (the CLI passes Ray tasks from pretrain.distributed)."""


def _run_units(
    todo: list[FeatureUnit],
    job: FeatureJob,
    devices: list[str],
    runner: TaskRunner | None,
    progress: WorkProgress,
) -> Iterator[dict]:
    """Each unit's part as it finishes; `progress` advances per batch here, per unit elsewhere."""
    from pretrain.data.shards.local_pool import run_units

    if runner is None and len(devices) == 1:  # here, in turn
        yield from (extract_unit(unit, job, devices[0], progress.advance) for unit in todo)
        return
    if runner is not None:  # one Ray task per unit
        finished: Iterator[dict] = iter(run_units(extract_unit_task, todo, job, remote=runner))
    else:
        shares = [
            (device, todo[i :: len(devices)]) for i, device in enumerate(devices) if todo[i :: len(devices)]
        ]
        cuda = any(device.startswith("cuda") for device in devices)  # CUDA cannot run in a forked child
        shared = run_units(_device_worker, shares, job, workers=len(shares), spawn=cuda)
        finished = (part for parts in shared for part in parts)
    for part in finished:
        progress.advance(len(part["rows"]) + part.get("skipped", 0))
        yield part


@dataclass
class FeatureSummary:
    out: Path
    samples: int
    units: int
    resumed_units: int
    dim: int
    views: int
    damaged: list[dict] = field(default_factory=list)
    """One entry per damaged shard: {shard, reason, skipped}."""

    @property
    def skipped(self) -> int:
        return sum(entry["skipped"] for entry in self.damaged)


def extract_features(
    job: FeatureJob, devices: list[str] | None = None, runner: TaskRunner | None = None
) -> FeatureSummary:
    """Features of every selected sample of `job.shards` into `job.out` (resumable), one input
    shard per task: over `devices` (default: every local GPU, else the CPU) or through `runner`."""
    out = Path(job.out)
    with output_lock(out):  # a second run into the same folder would mix two models' features
        (out / PARTS).mkdir(parents=True, exist_ok=True)
        for leftover in out.rglob(f"*{PARTIAL_SUFFIX}"):
            leftover.unlink()
        units = plan_units(job)
        done = {unit.shard: part for unit in units if (part := unit_done(out, unit)) is not None}
        todo = [unit for unit in units if unit.shard not in done]
        log.info(
            "features of %d shard(s) (%d already done) on %s",
            len(units),
            len(done),
            "tasks" if runner else ", ".join(devices or local_devices()),
        )
        progress = WorkProgress("features: samples", sum(unit.count for unit in todo), log)
        for part in _run_units(todo, job, devices or local_devices(), runner, progress):
            done[part["shard"]] = part
        parts = [done[unit.shard] for unit in units]
        rows = [row for part in parts for row in part["rows"]]
        _atomic(
            out / INDEX_NAME,
            lambda path: path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)),
        )
        dim, views = (parts[0]["dim"], parts[0]["views"]) if parts else (0, 0)
        damaged = [
            {"shard": part["shard"], "reason": part["damage"], "skipped": part.get("skipped", 0)}
            for part in parts
            if part.get("damage")
        ]
        for entry in damaged:
            log.warning("%s: %d sample(s) skipped: %s", entry["shard"], entry["skipped"], entry["reason"])
        summary = {
            "ckpt": job.ckpt,
            "shards": job.shards,
            "split": job.split,
            "samples": len(rows),
            "dim": dim,
            "views": views,
            "tokens": job.tokens,
            "files": [unit.file for unit in units],
            "tensors": ["features (M, D)", "view_features (M, V, D)"]
            + (["tokens (M, V, N, D)"] if job.tokens else []),
            "damaged_shards": damaged,
            "skipped_samples": sum(entry["skipped"] for entry in damaged),
        }
        _atomic(out / SUMMARY_NAME, lambda path: path.write_text(json.dumps(summary, indent=1) + "\n"))
    return FeatureSummary(out, len(rows), len(units), len(units) - len(todo), dim, views, damaged)


def load_features(out: str | Path) -> tuple[list[dict], torch.Tensor]:
    """(index rows, features (M, D)) of a finished extraction, in index order."""
    from safetensors.torch import load_file

    out = Path(out)
    rows = [json.loads(line) for line in (out / INDEX_NAME).read_text().splitlines()]
    tensors = {name: load_file(str(out / name))["features"] for name in sorted({r["file"] for r in rows})}
    return rows, torch.stack([tensors[r["file"]][r["row"]] for r in rows]) if rows else torch.empty(0)

"""The one typed config schema: nested dataclasses, one docstring per field, checks in __post_init__.

Sections: model, mask, data, optim, strategy, trainer, logging, cluster, finetune, distill
(`distill_schema.py`); `RunConfig` holds them and the cross-section rules. Loading and override parsing live in `loading.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.config.checks import check as _check
from pretrain.config.checks import check_mask_fits_grid
from pretrain.config.checks import choice as _choice
from pretrain.config.checks import finite_positive as _finite_positive
from pretrain.config.checks import in_open_unit as _in_open_unit
from pretrain.config.checks import positive as _positive
from pretrain.config.distill_schema import DistillConfig
from pretrain.models.backbones import BACKBONES, DEFAULT_BACKBONE
from pretrain.models.sizes import SIZES
from pretrain.pixels import token_grid

STAGES = ("pretrain", "finetune", "distill")
MASK_KINDS = ("tube", "random")


@dataclass
class ModelConfig:
    size: str = "b"
    """Named size from `pretrain.models.sizes.SIZES`: tiny, s, b, l, h, g."""
    img_size: int = 224
    """Input height and width in pixels (square)."""
    num_frames: int = 16
    """Frames per clip fed to the model."""
    tubelet_size: int = 2
    """Frames per tubelet (temporal patch size)."""
    patch_size: int | None = None
    """Spatial patch size; null takes the size's default (16, or 14 for g)."""
    drop_path: float = 0.0
    """Stochastic depth rate of the encoder (linearly increasing over blocks)."""
    norm_pix_loss: bool = True
    """Normalize each target cube per channel before the MSE (VideoMAE default)."""
    grad_checkpointing: bool = False
    """Recompute block activations in backward to save memory."""
    backbone: str = DEFAULT_BACKBONE
    """Encoder: vit (joint space-time attention, VideoMAE), timesformer (divided space-time
    attention), vivit (ViViT's factorised encoder). timesformer and vivit need tube masks."""
    temporal_depth: int | None = None
    """vivit: blocks of the temporal transformer; null takes the size's default (4; tiny 1)."""
    pixel_mean: tuple[float, float, float] | None = None
    """Per-channel input mean (0..1 units) the video is normalized with; null: ImageNet's. Weights
    carry theirs (HF ViViT: 0.5, i.e. inputs in [-1, 1]); predict/evaluate use the weights' own."""
    pixel_std: tuple[float, float, float] | None = None
    """Per-channel input std (0..1 units); null: ImageNet's (HF ViViT: 0.5)."""

    def __post_init__(self) -> None:
        _choice("model.size", self.size, tuple(SIZES))
        _choice("model.backbone", self.backbone, tuple(BACKBONES))
        if self.temporal_depth is not None:
            _positive("model.temporal_depth", self.temporal_depth)
        for key, stats in (("model.pixel_mean", self.pixel_mean), ("model.pixel_std", self.pixel_std)):
            _check(stats is None or len(stats) == 3, f"{key}={stats} must be 3 values (R, G, B) or null")
        _check(
            self.pixel_std is None or all(v > 0 for v in self.pixel_std),
            f"model.pixel_std={self.pixel_std} must be > 0",
        )
        _positive("model.img_size", self.img_size)
        _positive("model.num_frames", self.num_frames)
        _positive("model.tubelet_size", self.tubelet_size)
        if self.patch_size is not None:
            _positive("model.patch_size", self.patch_size)
        _check(0.0 <= self.drop_path < 1.0, f"model.drop_path={self.drop_path} must be in [0, 1)")
        patch = self.effective_patch_size
        _check(
            self.img_size % patch == 0,
            f"model.img_size={self.img_size} is not divisible by the patch size {patch}",
        )
        _check(
            self.num_frames % self.tubelet_size == 0,
            f"model.num_frames={self.num_frames} is not divisible by model.tubelet_size={self.tubelet_size}",
        )

    @property
    def effective_patch_size(self) -> int:
        return self.patch_size or SIZES[self.size].patch_size

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of one clip."""
        return token_grid(self.img_size, self.num_frames, self.effective_patch_size, self.tubelet_size)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)


@dataclass
class MaskConfig:
    ratio: float = 0.9
    """Fraction of spatial patches hidden from the encoder (tube masking over all time slots)."""
    decoder_ratio: float = 0.0
    """VideoMAE V2 decoder masking: fraction of tokens the decoder does NOT reconstruct
    (running-cell pattern). 0 disables decoder masking."""
    kind: str = "tube"
    """tube (VideoMAE: the same spatial positions hidden in every time slot) or random (each
    token independently, `int(ratio * N)` per clip; the VideoMAE ablation). Only vit takes random."""

    def __post_init__(self) -> None:
        _in_open_unit("mask.ratio", self.ratio)
        _choice("mask.kind", self.kind, MASK_KINDS)
        _check(
            self.decoder_ratio == 0.0 or 0.0 < self.decoder_ratio < 1.0,
            f"mask.decoder_ratio={self.decoder_ratio} must be 0 (off) or in the open interval (0, 1)",
        )


@dataclass
class DataConfig:
    shards: str = ""
    """Shard directory or fsspec URL holding manifest.json (built by `tubelet shards build`)."""
    split: str = "train"
    """Split to train on (e.g. train, train1, or all for unlabeled corpora)."""
    eval_split: str = "test"
    """Split evaluated by the finetune stage and `tubelet evaluate`."""
    eval_on_train: bool = False
    """Allow data.eval_split to hold training videos (e.g. `all` on a corpus without a held-out
    split); refused otherwise. The results then say, in capitals, that they are not held out."""
    batch_size: int = 8
    """Clips per device per step."""
    num_workers: int = 4
    """Data loader worker processes per device."""
    stride: int = 4
    """Temporal stride between sampled frames."""
    num_sample: int = 1
    """Repeated sampling: clips drawn from one decode of a video."""
    shuffle_buffer: int = 1000
    """Samples held in the shuffle buffer."""
    decode_threads: int = 1
    """FFmpeg threads per decode."""
    decode_device: str = "cpu"
    """cpu, or cuda: pretraining clips are decoded by the GPU's NVDEC in the training process (loader
    workers only read shards and draw clips; crops and YUV conversion on the device); needs a CUDA
    GPU and PyNvVideoCodec (pip install 'tubelet[gpu-decode]'). Fine-tuning and evaluation decode on
    the CPU."""
    epoch_size: int | None = None
    """Clips per epoch; null takes the manifest's sample count × num_sample."""
    normalize_on_device: bool = True
    """Ship uint8 clips and normalize them on the device: a quarter of float32's bytes through
    shared memory and host-to-device copies, and no float pass on the loader's CPU (about a third
    of its time per clip). false normalizes in the loader."""
    ship_yuv420: bool = True
    """Pretraining with normalize_on_device: batches of clips cut from 4:2:0 video ship as YUV
    4:2:0 frames (half of RGB's bytes, no colour conversion on the loader's CPU) and are
    converted to RGB on the device (BT.601). false ships RGB."""
    test_clips: int = 5
    """Temporal views per video at evaluation."""
    test_crops: int = 3
    """Spatial views per video at evaluation."""

    def __post_init__(self) -> None:
        positive = ("batch_size", "stride", "num_sample", "shuffle_buffer", "decode_threads", "test_clips")
        for key in (*positive, "test_crops"):
            _positive(f"data.{key}", getattr(self, key))
        _check(self.num_workers >= 0, f"data.num_workers={self.num_workers} must be >= 0")
        _choice("data.decode_device", self.decode_device, ("cpu", "cuda"))
        _check(
            self.decode_device == "cpu" or self.normalize_on_device,
            "data.decode_device=cuda needs data.normalize_on_device=true (clips exist only on the device)",
        )
        if self.epoch_size is not None:
            _positive("data.epoch_size", self.epoch_size)

    def require_shards(self) -> str:
        """`data.shards`, which every stage needs (a config may leave it empty until then)."""
        _check(
            bool(self.shards),
            "data.shards is required: the folder holding manifest.json (tubelet shards build)",
        )
        return self.shards


@dataclass
class OptimConfig:
    base_lr: float = 1.5e-4
    """Learning rate per 256 clips of global batch: lr = base_lr × global_batch / 256."""
    min_lr: float = 1e-6
    """Floor of the cosine schedule."""
    weight_decay: float = 0.05
    """AdamW weight decay (never applied to norms, biases, tokens)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    epochs: int = 800
    """Training length in epochs."""
    warmup_epochs: int = 40
    """Linear warmup length in epochs (applied per step)."""
    clip_grad: float | None = None
    """Gradient-norm clipping threshold; null disables."""
    accumulate_grad_batches: int = 1
    """Micro-batches per optimizer step."""
    layer_decay: float = 1.0
    """Layer-wise lr decay for fine-tuning (1.0 disables)."""

    def __post_init__(self) -> None:
        _finite_positive("optim.base_lr", self.base_lr)
        _positive("optim.epochs", self.epochs)
        _positive("optim.accumulate_grad_batches", self.accumulate_grad_batches)
        _check(
            math.isfinite(self.min_lr) and self.min_lr >= 0,
            f"optim.min_lr={self.min_lr} must be a finite number >= 0",
        )
        _check(self.weight_decay >= 0, f"optim.weight_decay={self.weight_decay} must be >= 0")
        _check(
            0 <= self.warmup_epochs <= self.epochs,
            f"optim.warmup_epochs={self.warmup_epochs} must be in [0, optim.epochs={self.epochs}]",
        )
        _check(
            all(0.0 <= b < 1.0 for b in self.betas), f"optim.betas={list(self.betas)} must each be in [0, 1)"
        )
        _check(0.0 < self.layer_decay <= 1.0, f"optim.layer_decay={self.layer_decay} must be in (0, 1]")
        if self.clip_grad is not None:
            _positive("optim.clip_grad", self.clip_grad)


@dataclass
class StrategyConfig:
    name: str = "auto"
    """auto (single device or DDP), ddp, or deepspeed."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage: 0, 1, 2 or 3 (only with name=deepspeed)."""
    offload_optimizer: str = "none"
    """Where optimizer state lives under ZeRO: none, cpu, nvme."""
    offload_params: str = "none"
    """Where parameters live under ZeRO-3: none, cpu, nvme."""
    nvme_path: str | None = None
    """Directory for NVMe offload (required when any offload is nvme)."""

    def __post_init__(self) -> None:
        _choice("strategy.name", self.name, ("auto", "ddp", "deepspeed"))
        _choice("strategy.zero_stage", self.zero_stage, (0, 1, 2, 3))
        _choice("strategy.offload_optimizer", self.offload_optimizer, ("none", "cpu", "nvme"))
        _choice("strategy.offload_params", self.offload_params, ("none", "cpu", "nvme"))
        uses_zero = self.zero_stage > 0 or self.offload_optimizer != "none" or self.offload_params != "none"
        _check(
            self.name == "deepspeed" or not uses_zero,
            f"strategy.zero_stage / offload need strategy.name=deepspeed (got {self.name!r})",
        )
        _check(
            self.offload_params == "none" or self.zero_stage == 3,
            f"strategy.offload_params={self.offload_params!r} needs strategy.zero_stage=3 "
            f"(got {self.zero_stage})",
        )
        _check(
            self.offload_optimizer == "none" or self.zero_stage >= 1,
            f"strategy.offload_optimizer={self.offload_optimizer!r} needs strategy.zero_stage >= 1",
        )
        needs_nvme = "nvme" in (self.offload_optimizer, self.offload_params)
        _check(
            not needs_nvme or bool(self.nvme_path), "strategy.nvme_path must be set when offloading to nvme"
        )


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    """auto, cpu or gpu."""
    devices: int = 1
    """Processes (devices) per node (local launcher; under Ray, cluster.num_workers counts instead)."""
    num_nodes: int = 1
    """Nodes in the run (local launcher; under Ray, cluster.num_workers counts instead)."""
    precision: str = "auto"
    """auto (bf16-mixed on GPU, 32-true on CPU), 32-true, bf16-mixed, 16-mixed."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 runs optim.epochs."""
    seed: int = 0
    """Global seed (model init, masks, data order)."""
    compile: bool = False
    """torch.compile the model."""
    output_dir: str = "runs"
    """Root directory of run directories."""
    run_name: str | None = None
    """Run directory name under output_dir; null derives one from the time."""
    checkpoint_every_steps: int = 1000
    """Save a checkpoint every N optimizer steps (and at the end)."""
    resume: str = "none"
    """none, auto (latest valid checkpoint of the run), or a checkpoint path."""
    max_nonfinite_steps: int = 5
    """Consecutive non-finite losses that stop the run."""

    def __post_init__(self) -> None:
        _choice("trainer.accelerator", self.accelerator, ("auto", "cpu", "gpu"))
        _choice("trainer.precision", self.precision, ("auto", "32-true", "bf16-mixed", "16-mixed"))
        _positive("trainer.devices", self.devices)
        _positive("trainer.num_nodes", self.num_nodes)
        _positive("trainer.checkpoint_every_steps", self.checkpoint_every_steps)
        _positive("trainer.max_nonfinite_steps", self.max_nonfinite_steps)
        _check(
            self.max_steps == -1 or self.max_steps > 0,
            f"trainer.max_steps={self.max_steps} must be -1 (use optim.epochs) or > 0",
        )
        _check(
            not (self.accelerator == "cpu" and self.precision in ("bf16-mixed", "16-mixed")),
            f"trainer.precision={self.precision!r} is not supported with trainer.accelerator='cpu'; "
            "use 32-true",
        )


@dataclass
class LoggingConfig:
    wandb: str = "offline"
    """W&B mode: online, offline or disabled (env WANDB_MODE overrides)."""
    project: str = "tubelet"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user)."""
    csv: bool = True
    """Also write metrics.csv in the run directory."""
    every_steps: int = 10
    """Log scalar metrics every N steps."""
    recon_every_steps: int = 500
    """Log an original | masked | reconstruction video and PNG grid every N steps (0 disables)."""
    device_peak_tflops: float | None = None
    """Peak dense TFLOP/s of one device for MFU; null looks it up for known GPUs."""

    def __post_init__(self) -> None:
        _choice("logging.wandb", self.wandb, ("online", "offline", "disabled"))
        _positive("logging.every_steps", self.every_steps)
        _check(
            self.recon_every_steps >= 0, f"logging.recon_every_steps={self.recon_every_steps} must be >= 0"
        )
        if self.device_peak_tflops is not None:
            _finite_positive("logging.device_peak_tflops", self.device_peak_tflops)


@dataclass
class ClusterConfig:
    launcher: str = "local"
    """local (Lightning alone) or ray (Ray Train)."""
    address: str | None = None
    """Ray address to attach to; null starts a local Ray instance."""
    num_workers: int = 1
    """Ray Train workers (one process per device)."""
    use_gpu: bool = False
    """Give each Ray worker a GPU."""
    cpus_per_worker: int = 1
    """CPUs reserved per Ray worker."""
    gpus_per_worker: float = 1.0
    """GPUs reserved per Ray worker when use_gpu."""
    placement_strategy: str = "PACK"
    """Ray placement group strategy: PACK, SPREAD, STRICT_PACK, STRICT_SPREAD."""
    storage_path: str | None = None
    """Ray Train storage (local path, NFS, or cloud URI) for checkpoints and results."""
    max_failures: int = 0
    """Worker-group failures Ray Train recovers from (-1 = unlimited)."""

    def __post_init__(self) -> None:
        _choice("cluster.launcher", self.launcher, ("local", "ray"))
        _choice(
            "cluster.placement_strategy",
            self.placement_strategy,
            ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"),
        )
        _positive("cluster.num_workers", self.num_workers)
        _positive("cluster.cpus_per_worker", self.cpus_per_worker)
        _check(self.gpus_per_worker >= 0, f"cluster.gpus_per_worker={self.gpus_per_worker} must be >= 0")
        _check(
            not self.use_gpu or self.gpus_per_worker > 0,
            f"cluster.use_gpu=true needs cluster.gpus_per_worker > 0 (got {self.gpus_per_worker})",
        )
        _check(self.max_failures >= -1, f"cluster.max_failures={self.max_failures} must be >= -1")


@dataclass
class FinetuneConfig:
    init: str = "none"
    """Weights to start from: a Tubelet export, stage checkpoint, HF VideoMAE folder,
    original VideoMAE .pth, or none."""
    mode: str = "full"
    """full (all weights) or linear_probe (frozen encoder, batch-normed linear head)."""
    num_classes: int | None = None
    """Classes of the head; null reads the manifest's class index."""
    head_dropout: float = 0.5
    """Dropout before the linear head."""
    mixup: float = 0.8
    """Mixup alpha (0 disables)."""
    cutmix: float = 1.0
    """CutMix alpha (0 disables)."""
    label_smoothing: float = 0.1
    """Label smoothing of the cross-entropy."""
    randaug_magnitude: int = 7
    """RandAugment magnitude (m)."""
    randaug_ops: int = 4
    """RandAugment operations per clip (n); 0 disables."""
    random_erasing: float = 0.25
    """Probability of random erasing per clip."""
    crop_scale_min: float = 0.08
    """Lower bound of the random-resized-crop area scale."""
    split: int = 1
    """Official split (1, 2 or 3) for UCF101 / HMDB51."""

    def __post_init__(self) -> None:
        _choice("finetune.mode", self.mode, ("full", "linear_probe"))
        _choice("finetune.split", self.split, (1, 2, 3))
        _check(0.0 <= self.head_dropout < 1.0, f"finetune.head_dropout={self.head_dropout} must be in [0, 1)")
        _check(
            0.0 <= self.label_smoothing < 1.0,
            f"finetune.label_smoothing={self.label_smoothing} must be in [0, 1)",
        )
        _check(
            0.0 <= self.random_erasing <= 1.0,
            f"finetune.random_erasing={self.random_erasing} must be in [0, 1]",
        )
        _check(
            0.0 < self.crop_scale_min <= 1.0,
            f"finetune.crop_scale_min={self.crop_scale_min} must be in (0, 1]",
        )
        _check(self.mixup >= 0 and self.cutmix >= 0, "finetune.mixup and finetune.cutmix must be >= 0")
        if self.num_classes is not None:
            _positive("finetune.num_classes", self.num_classes)


@dataclass
class RunConfig:
    stage: str = "pretrain"
    """pretrain, finetune or distill."""
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        _choice("stage", self.stage, STAGES)
        _check(
            self.data.normalize_on_device or (self.model.pixel_mean is None and self.model.pixel_std is None),
            "model.pixel_mean/pixel_std are applied on the device: they need data.normalize_on_device=true",
        )
        _check(
            not BACKBONES[self.model.backbone].tube_mask or self.mask.kind == "tube",
            f"mask.kind={self.mask.kind!r} cannot train model.backbone={self.model.backbone}: divided and "
            "factorised attention run on the visible tokens as a (time slices x positions) grid, which "
            "only mask.kind=tube gives",
        )
        check_mask_fits_grid(self.model.grid, self.mask.ratio, self.mask.decoder_ratio)
        _check(
            self.optim.min_lr <= self.lr,
            f"optim.min_lr={self.optim.min_lr:g} is above the peak lr {self.lr:.3g} (optim.base_lr="
            f"{self.optim.base_lr:g} x global batch {self.global_batch} / 256); lower optim.min_lr",
        )

    def check_before_run(self) -> None:
        """What a stage needs beyond a valid config, checked before any work starts. Not part of
        `__post_init__`: a config saved with a checkpoint must still load when its paths are gone."""
        self.data.require_shards()
        _check(self.stage != "distill" or bool(self.distill.teacher), "distill.teacher=PATH is required")
        resume = self.trainer.resume
        _check(
            resume in ("none", "auto") or "://" in resume or Path(resume).exists(),
            f"trainer.resume={resume!r} is neither auto, none nor an existing path",
        )

    @property
    def trains_classifier(self) -> bool:
        """Fine-tuning, or distilling logits (which fine-tunes the student on labels)."""
        return self.stage == "finetune" or (self.stage == "distill" and self.distill.kind == "logits")

    @property
    def world_size(self) -> int:
        if self.cluster.launcher == "ray":
            return self.cluster.num_workers
        return self.trainer.devices * self.trainer.num_nodes

    @property
    def global_batch(self) -> int:
        return self.data.batch_size * self.world_size * self.optim.accumulate_grad_batches

    @property
    def lr(self) -> float:
        """Peak learning rate by the linear scaling rule."""
        return self.optim.base_lr * self.global_batch / 256

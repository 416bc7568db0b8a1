"""Decoding on the GPU's hardware decoders (NVDEC) for `data.decode_device=cuda`, with PyNvVideoCodec
(`pip install 'tubelet[gpu-decode]'`).

Why PyNvVideoCodec: its `SimpleDecoder` decodes straight from a bytes object (a WebDataset sample,
no temporary file), fetches frames by index (seeking to the keyframe before them), hands frames
over in GPU memory through DLPack, and installs as one manylinux wheel that bundles the demuxer
(libavformat) it needs; trimmed of its samples and FFmpeg source it is about 10 MiB, which fits the
GPU script's carried wheels (tests/gpu/fetch_wheels.sh). torchcodec's wheel needs the system's FFmpeg
libraries (absent on a bare GPU image), DALI's is several hundred MiB.

The loader's workers then only read shards and draw clips (`EncodedClip`: the sample's bytes, stored
frame indices, crop box, flip, masks); the training process decodes each video of a batch once on the
device (NV12 frames), crops and resizes the YUV planes there and hands the module YUV 4:2:0 frames
`(B, T, H*3/2, W)`, the layout CPU batches ship (`data.ship_yuv420`), converted to RGB on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pretrain.config import ConfigError

Box = tuple[int, int, int, int]  # (top, left, height, width) in native pixels


def require_gpu_decoding() -> None:
    """ConfigError unless this process can decode on a CUDA GPU with PyNvVideoCodec."""
    if not torch.cuda.is_available():
        raise ConfigError(
            "data.decode_device=cuda needs a CUDA GPU (none is visible here); use data.decode_device=cpu"
        )
    try:
        import PyNvVideoCodec  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            "data.decode_device=cuda needs PyNvVideoCodec: pip install 'tubelet[gpu-decode]' "
            f"({error}); or data.decode_device=cpu"
        ) from None


@dataclass
class EncodedClip:
    """A pretraining clip not decoded yet: decoded on the device by `EncodedBatch.decode`."""

    data: bytes
    indices: tuple[int, ...]
    """Stored frame indices, in clip order."""
    box: Box
    flip: bool
    size: tuple[int, int]
    """Output (height, width)."""


class EncodedBatch:
    """The `video` of a batch decoded on the device (Lightning moves tensors, not this object)."""

    def __init__(self, clips: list[EncodedClip]) -> None:
        self.clips, self.size = clips, clips[0].size

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def shape(self) -> torch.Size:
        """The decoded batch's shape `(B, T, H*3/2, W)`."""
        height, width = self.size
        return torch.Size((len(self.clips), len(self.clips[0].indices), height * 3 // 2, width))

    def decode(self, device: torch.device, decode=None) -> torch.Tensor:
        """uint8 YUV 4:2:0 frames `(B, T, H*3/2, W)` on `device`; each distinct video (the
        num_sample clips of one video share its bytes) is decoded once, its frames' union."""
        decode = decode or decode_nv12
        out = torch.empty(self.shape, dtype=torch.uint8, device=device)
        by_video: dict[int, list[int]] = {}
        for row, clip in enumerate(self.clips):
            by_video.setdefault(id(clip.data), []).append(row)
        for rows in by_video.values():
            union = sorted({i for row in rows for i in self.clips[row].indices})
            frames = decode(self.clips[rows[0]].data, union, device)  # (U, H*3/2, W) NV12
            position = {index: n for n, index in enumerate(union)}
            for row in rows:
                clip = self.clips[row]
                picked = frames[[position[i] for i in clip.indices]]  # (T, H*3/2, W)
                out[row] = crop_nv12_to_i420(picked, clip.box, self.size, clip.flip)
        return out


def decode_nv12(data: bytes, indices: Sequence[int], device: torch.device) -> torch.Tensor:
    """Frames `indices` (sorted, stored frames) of encoded `data`, decoded by NVDEC: uint8 NV12
    `(len(indices), H*3/2, W)` on `device` (Y rows, then interleaved U/V rows)."""
    import PyNvVideoCodec as nvc

    decoder = nvc.SimpleDecoder(
        data,
        gpu_id=device.index or 0,
        use_device_memory=True,
        output_color_type=nvc.OutputColorType.NATIVE,
    )
    last = len(decoder) - 1
    frames = decoder.get_batch_frames_by_index([min(int(i), last) for i in indices])
    return torch.stack([torch.from_dlpack(frame) for frame in frames]).to(device)


def pyav_nv12(data: bytes, indices: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """The same frames decoded on the CPU by PyAV, in NVDEC's NV12 layout `(T, H*3/2, W)`: the
    reference the GPU is checked against, and a stand-in for NVDEC where there is no GPU."""
    import numpy as np

    from pretrain.data.video.decode import decode_window

    frames = decode_window(data, list(indices))
    out = []
    for row in range(len(frames)):
        y, u, v = frames.planes(row)
        uv = np.stack([u, v], axis=-1).reshape(u.shape[0], -1)  # (H/2, W), U and V interleaved
        out.append(torch.from_numpy(np.concatenate([y, uv])))
    return torch.stack(out).to(device)


def crop_nv12_to_i420(frames: torch.Tensor, box: Box, size: tuple[int, int], flip: bool) -> torch.Tensor:
    """Crop `box` of NV12 frames `(T, H*3/2, W)`, resize to `size` (bilinear, as the CPU loader's
    OpenCV resize) and mirror if `flip`: YUV 4:2:0 `(T, h*3/2, w)` with Y rows, then the U plane
    and the V plane flattened (`transforms.yuv420_to_rgb`'s layout). Even box corners (chroma pairs)."""
    count, rows, width = frames.shape
    height = rows * 2 // 3
    out_h, out_w = size
    top, left, box_h, box_w = (int(v) // 2 * 2 for v in box)
    box_h, box_w = min(max(box_h, 2), height - top), min(max(box_w, 2), width - left)
    luma = frames[:, top : top + box_h, left : left + box_w]  # (T, h, w)
    uv = frames[:, height:].reshape(count, height // 2, width // 2, 2)  # interleaved U, V
    chroma = uv[:, top // 2 : (top + box_h) // 2, left // 2 : (left + box_w) // 2].permute(0, 3, 1, 2)
    y = _resize(luma[:, None], (out_h, out_w))[:, 0]  # (T, out_h, out_w)
    u, v = _resize(chroma, (out_h // 2, out_w // 2)).unbind(1)  # (T, out_h/2, out_w/2) each
    if flip:
        y, u, v = y.flip(-1), u.flip(-1), v.flip(-1)
    planes = [y.reshape(count, -1), u.reshape(count, -1), v.reshape(count, -1)]
    return torch.cat(planes, dim=1).reshape(count, out_h * 3 // 2, out_w)


def _resize(planes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 `(N, C, h, w)` -> `(N, C, *size)`, bilinear with half-pixel centres, rounded."""
    resized = F.interpolate(planes.float(), size=size, mode="bilinear", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)

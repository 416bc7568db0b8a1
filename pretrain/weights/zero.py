"""Full fp32 weights out of a DeepSpeed ZeRO 0/1/2/3 checkpoint folder, loaded safely, without DeepSpeed.

A DeepSpeed save (`state/`) holds `latest` (the tag) and, in `state/<tag>/`:
- `mp_rank_00_model_states.pt` (ZeRO 0/1/2) or `zero_pp_rank_<r>_mp_rank_00_model_states.pt` per rank
  (ZeRO 3): the module's state dict (ZeRO 3: empty placeholders), `param_shapes` (per optimizer
  group, name -> shape in flattening order), `buffer_names`, frozen parameters, and the Lightning
  client state (`hyper_parameters`, loops, callbacks);
- `zero_pp_rank_<r>_mp_rank_00_optim_states.pt` per rank (ZeRO >= 1; `bf16_` prefixed with the bf16
  optimizer): the fp32 master weights, flat per group — ZeRO 1/2 `single_partition_of_fp32_groups`
  (rank r holds a contiguous slice of each group's flat vector), ZeRO 3 `fp32_flat_groups` (rank r
  holds slice r of every parameter, each padded to ceil(numel / world_size)).

Same layout as DeepSpeed's own `zero_to_fp32`, re-read here with `safe_torch_load` (that utility
unpickles with `weights_only=False`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.weights.safe_load import safe_torch_load

Tensors = dict[str, torch.Tensor]
RANK_OF = re.compile(r"zero_pp_rank_(\d+)_mp_rank_00_(model|optim)_states\.pt$")


def tag_folder(state: Path) -> Path:
    """`state/<tag>/` named by `state/latest` (else the only sub-folder)."""
    latest = state / "latest"
    if latest.is_file():
        tag = latest.read_text().strip()
        if not tag or "/" in tag or tag.startswith("."):
            raise CheckpointError(f"{latest} names no usable tag ({tag!r})")
        folder = state / tag
    else:
        folders = [p for p in state.iterdir() if p.is_dir()]
        if len(folders) != 1:
            raise CheckpointError(f"{state} has no 'latest' file and {len(folders)} tag folders")
        folder = folders[0]
    if not folder.is_dir():
        raise CheckpointError(f"{folder} (the tag in {latest}) is missing")
    return folder


def _by_rank(folder: Path, kind: str) -> list[Path]:
    found = {}
    for path in folder.iterdir():
        match = RANK_OF.search(path.name)
        if match and match.group(2) == kind:
            found[int(match.group(1))] = path
    if sorted(found) != list(range(len(found))):
        raise CheckpointError(f"{folder}: {kind} state files of ranks {sorted(found)} (a rank is missing)")
    return [found[rank] for rank in range(len(found))]


def read_zero_checkpoint(state: Path) -> tuple[Tensors, dict[str, Any]]:
    """(full fp32 state dict with the module's own names, the Lightning client state)."""
    folder = tag_folder(state)
    model_files = sorted(folder.glob("mp_rank_*_model_states.pt")) or _by_rank(folder, "model")
    if not model_files:
        raise CheckpointError(f"{folder} holds no DeepSpeed model states file")
    models = [safe_torch_load(path) for path in model_files]
    optim_files = _by_rank(folder, "optim")
    if not optim_files:  # ZeRO 0: the module's weights are whole in the model states
        return dict(models[0]["module"]), _client_state(models[0])
    optims = [safe_torch_load(path)["optimizer_state_dict"] for path in optim_files]
    stage = int(optims[0].get("zero_stage", 0))
    if stage == 3:
        state_dict = _merge_zero3(models, optims, folder)
    else:
        state_dict = _merge_zero12(models[0], optims, folder)
    for name in models[0].get("buffer_names") or []:
        state_dict[name] = models[0]["module"][name].float()
    return state_dict, _client_state(models[0])


def _client_state(model_states: dict) -> dict[str, Any]:
    return {k: v for k, v in model_states.items() if k in ("hyper_parameters", "global_step", "epoch")}


def _take(flat: torch.Tensor, offset: int, shape: Any, where: Path) -> torch.Tensor:
    numel = math.prod(shape)
    if offset + numel > flat.numel():
        raise CheckpointError(f"{where}: the flat fp32 weights end before parameter shapes do (truncated?)")
    return flat.narrow(0, offset, numel).view(*shape).clone()


def _merge_zero12(model: dict, optims: list[dict], where: Path) -> Tensors:
    """Rank r holds a contiguous slice of each group's flat vector: concatenate, then cut by shape
    (skipping the alignment padding DeepSpeed records after each parameter)."""
    state: Tensors = {}
    paddings = optims[0].get("param_alignment_paddings")  # per group, per parameter (newer DeepSpeed)
    for group, shapes in enumerate(model["param_shapes"]):
        flat = torch.cat([optim["single_partition_of_fp32_groups"][group] for optim in optims])
        padding = paddings[group] if paddings is not None else [0] * len(shapes)
        offset = 0
        for (name, shape), pad in zip(shapes.items(), padding, strict=True):
            state[name] = _take(flat, offset, shape, where)
            offset += math.prod(shape) + pad
    for name, fragment in (model.get("frozen_param_fragments") or {}).items():
        state[name] = fragment.float().view(*model["frozen_param_shapes"][name]).clone()
    return state


def _merge_zero3(models: list[dict], optims: list[dict], where: Path) -> Tensors:
    """Rank r holds part r of every parameter, each part ceil(numel / world) long (the last padded)."""
    world = len(optims)
    flats = [torch.cat(list(optim["fp32_flat_groups"])) for optim in optims]
    state: Tensors = {}
    offset = 0
    for shapes in models[0]["param_shapes"]:
        for name, shape in shapes.items():
            numel = math.prod(shape)
            part = math.ceil(numel / world)
            pieces = [_take(flat, offset, (part,), where) for flat in flats]
            state[name] = torch.cat(pieces).narrow(0, 0, numel).view(*shape)
            offset += part
    for name, shape in (models[0].get("frozen_param_shapes") or {}).items():
        numel = math.prod(shape)
        pieces = [model["frozen_param_fragments"][name].flatten() for model in models]
        state[name] = torch.cat(pieces).narrow(0, 0, numel).view(*shape).float().clone()
    return state

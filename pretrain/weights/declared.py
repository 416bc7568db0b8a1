"""Does a source's declared architecture match the tensors it holds? Checked before any model is built.

A `config.json` may say anything (`depth: 100000`, `num_hidden_layers: 100000`, a huge `dim`): building
that model first would allocate until the machine gives out. The tensors present (a safetensors header
lists them all) fix the real architecture, so the check costs milliseconds and allocates nothing:
1. every repeated-block count the config declares must exist among the tensor names (a bound that
   needs no model at all, so a declared depth of 100000 never reaches a constructor);
2. the model is then built on the `meta` device (shapes only, no memory) and its tensor names and
   shapes are compared one by one with the weights.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec, arch_problems

Tensors = dict[str, torch.Tensor]
BLOCK_INDEX = re.compile(r"^(.*?blocks)\.(\d+)\.")
COUNTED_FIELDS = ("depth", "decoder_depth", "temporal_depth")
"""`ArchSpec` fields that count repeated blocks (decoder_depth only matters for a pretraining model)."""


def block_counts(names: list[str]) -> dict[str, int]:
    """'encoder.blocks' -> number of distinct block indices under that prefix."""
    indices: dict[str, set[int]] = defaultdict(set)
    for name in names:
        match = BLOCK_INDEX.match(name)
        if match:
            indices[match.group(1)].add(int(match.group(2)))
    return {prefix: len(found) for prefix, found in indices.items()}


def check_block_counts(state: Tensors, model_config: dict[str, Any], where: str) -> None:
    """A declared block count above every block list in the weights is a lie about the size."""
    present = max(block_counts(list(state)).values(), default=0)
    for name in COUNTED_FIELDS:
        if name == "decoder_depth" and model_config.get("kind") != "pretraining":
            continue
        declared = model_config.get(name)
        if isinstance(declared, int) and declared > present:
            raise CheckpointError(
                f"{where}the config declares {name}={declared} but the weights hold at most "
                f"{present} blocks: config and weights do not match"
            )


def check_shapes(
    state: Tensors,
    model_config: dict[str, Any],
    builder: Callable[..., tuple[nn.Module, Tensors]],
    where: str,
) -> None:
    """Build the declared model on the meta device and compare every tensor name and shape."""
    with torch.device("meta"):
        model, loadable = builder(state, model_config)
    wanted = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    given = {name: tuple(tensor.shape) for name, tensor in loadable.items()}
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    shapes = [
        f"{n}: config {wanted[n]} vs weights {given[n]}"
        for n in sorted(wanted)
        if given.get(n, wanted[n]) != wanted[n]
    ]
    problems = [
        f"{label} {items[:3]}{' ...' if len(items) > 3 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{where}the config does not describe these weights ({model_config.get('kind')} model): "
            + "; ".join(problems)
        )


def check_class_names(state: Tensors, model_config: dict[str, Any], where: str) -> None:
    """A classifier's names (HF `id2label`, an export's `class_names`) must name every head row:
    fewer names would fail at the first prediction of a class that has none."""
    names = model_config.get("class_names")
    heads = [state[key] for key in ("head.weight", "head.1.weight") if key in state]
    if model_config.get("kind") != "classifier" or not names or not heads:
        return
    rows = int(heads[0].shape[0])
    if len(names) != rows:
        raise CheckpointError(
            f"{where}the head has {rows} classes but the config names {len(names)} "
            f"(id2label / class_names must name every class)"
        )


def checked_arch(where: str, **values: Any) -> ArchSpec:
    """The architecture a weights file declares; whatever is impossible about it is that file's
    fault: one CheckpointError naming `where`, before anything is built."""
    problems = arch_problems(values)
    if problems:
        raise CheckpointError(f"{where}: model architecture: {'; '.join(problems)}")
    return ArchSpec.from_dict(values)

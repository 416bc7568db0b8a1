"""Make a model safe for ZeRO-3 without the model knowing about DeepSpeed.

ZeRO-3 gathers a module's parameters around that module's own forward and again in backward,
through hooks on the module's tensor outputs. Two patterns escape it: a parameter read directly
by some other module's code (`F.linear(x, self.head.weight[rows])`, a `mask_token` added in the
parent's forward), and a module whose output is a dataclass (the backward hooks cannot find its
tensors). One dry forward finds both; each such parameter is registered as an external parameter
of the nearest enclosing module that is called with a tensor output, or of the top-level module
(whose output is the loss tensor), so ZeRO-3 gathers it whenever the code that reads it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

TRACKABLE_OUTPUTS = (torch.Tensor, tuple, list, dict)


def _trace_calls(model: nn.Module, run_forward: Callable[[], Any]) -> dict[nn.Module, bool]:
    """module -> True when called and every output was trackable, False when an output was not."""
    called: dict[nn.Module, bool] = {}

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        called[module] = called.get(module, True) and isinstance(output, TRACKABLE_OUTPUTS)

    handles = [m.register_forward_hook(record) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            run_forward()
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return called


def untracked_parameters(
    model: nn.Module, run_forward: Callable[[], Any]
) -> list[tuple[str, str, nn.Parameter]]:
    """(parameter name, name of the module to register it on, parameter) for every direct parameter
    of a module that is never called or whose output hides its tensors. It is registered on the
    nearest enclosing module that is called with a tensor output (the one whose code reads it),
    or on the top level ("") when there is none."""
    called = _trace_calls(model, run_forward)
    modules = dict(model.named_modules())
    found = []
    for name, module in modules.items():
        if called.get(module, False):
            continue
        holder = name
        while holder and not called.get(modules[holder], False):
            holder = holder.rpartition(".")[0]
        holder = holder if holder and called.get(modules[holder], False) else ""
        prefix = f"{name}." if name else ""
        found += [(prefix + pname, holder, p) for pname, p in module.named_parameters(recurse=False)]
    return found


def register_untracked_parameters(
    top: nn.Module, model: nn.Module, run_forward: Callable[[], Any]
) -> dict[str, str]:
    """Register what `untracked_parameters` finds; "" holders mean `top` (which returns a tensor)."""
    from deepspeed.runtime.zero.partition_parameters import register_external_parameter

    modules = dict(model.named_modules())
    registered = {}
    for name, holder, param in untracked_parameters(model, run_forward):
        register_external_parameter(modules[holder] if holder else top, param)
        registered[name] = holder or "<top>"
    log.info("ZeRO-3: parameters gathered with an enclosing module: %s", registered)
    return registered


def dry_run_inputs(spec: Any, mask_ratio: float, decoder_ratio: float) -> dict[str, Any]:
    """A one-clip input for the dry forward: zeros and a tube mask (decoder mask when used)."""
    from pretrain.masking import batch_masks

    video = torch.zeros(1, 3, spec.num_frames, spec.img_size, spec.img_size)  # (1, C, T, H, W)
    mask, decoder_mask = batch_masks(1, spec.grid, mask_ratio, decoder_ratio)
    return {"video": video, "mask": mask, "decoder_mask": decoder_mask}

"""Optional torch.compile of the MEMO networks' hot blocks.

Whole-network compilation trips over the clip context (reference features, motion memory views)
that the diffusion net reads, so the blocks whose element-wise work fuses well are compiled one
by one: resnet blocks (GroupNorm + SiLU + conv + time embedding) and the GEGLU projections of the
feed-forward layers. The rest runs eagerly. Results stay within fp32 parity tolerance; the first call per
resolution level pays the compilation.
"""
from __future__ import annotations

import torch
from torch import nn

from ..networks.blocks import GEGLU, ResnetBlock

COMPILED_BLOCKS = (ResnetBlock, GEGLU)
RECOMPILE_LIMIT = 64  # one graph per block shape (channels x resolution level), both networks


def compile_networks(networks: nn.Module, mode: str | None = None, dynamic: bool | None = None) -> int:
    """Compile every resnet and feed-forward block of `networks` in place; returns how many.

    Calling it again is harmless (already compiled blocks are skipped)."""
    dynamo = torch._dynamo.config
    if getattr(dynamo, "recompile_limit", RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
        dynamo.recompile_limit = RECOMPILE_LIMIT
    count = 0
    for module in networks.modules():
        if isinstance(module, COMPILED_BLOCKS) and not getattr(module, "_memo_compiled", False):
            module.compile(mode=mode, dynamic=dynamic)
            module._memo_compiled = True
            count += 1
    return count

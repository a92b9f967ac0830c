"""Layer operations for the MEMO networks, in the shape of ComfyUI's `comfy.ops` namespaces.

The networks are built from `torch.nn` layers (the default, nothing changes outside ComfyUI).
`apply_operations(module, ops)` swaps each Linear / Conv2d / GroupNorm / LayerNorm / Embedding
for the class of the same name in `ops` (e.g. `comfy.ops.manual_cast`, or `CastOps` below):
these subclasses keep the parameters and state-dict keys and only change `forward`, so the
official checkpoint keys stay what they are.

`CastOps` layers cast their weights to the input's device and dtype at every call. That makes
two things possible: weights that live on the host and are streamed to the device layer by
layer (partial loading), and weights stored in float8 (e4m3fn) computed in bf16/fp16
(`store_weights`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SWAPPABLE = ("Linear", "Conv2d", "GroupNorm", "LayerNorm", "Embedding")
FP8 = torch.float8_e4m3fn


def cast_to(p: torch.Tensor | None, like: torch.Tensor, dtype=None) -> torch.Tensor | None:
    """A parameter on `like`'s device in `dtype` (default: like's dtype); no copy when it already is."""
    if p is None:
        return None
    return p.to(device=like.device, dtype=dtype or like.dtype, non_blocking=True)


class CastOps:
    """Layers that cast weights to the input's device and dtype per call (manual cast)."""

    class Linear(nn.Linear):
        def forward(self, x):
            return F.linear(x, cast_to(self.weight, x), cast_to(self.bias, x))

    class Conv2d(nn.Conv2d):
        def forward(self, x):
            return self._conv_forward(x, cast_to(self.weight, x), cast_to(self.bias, x))

    class GroupNorm(nn.GroupNorm):
        def forward(self, x):
            return F.group_norm(x, self.num_groups, cast_to(self.weight, x), cast_to(self.bias, x), self.eps)

    class LayerNorm(nn.LayerNorm):
        def forward(self, x):
            return F.layer_norm(x, self.normalized_shape, cast_to(self.weight, x), cast_to(self.bias, x), self.eps)

    class Embedding(nn.Embedding):
        compute_dtype = None  # set by store_weights when the table is stored in float8

        def forward(self, idx):
            weight = self.weight.to(device=idx.device, dtype=self.compute_dtype or self.weight.dtype)
            return F.embedding(idx, weight, self.padding_idx, self.max_norm, self.norm_type,
                               self.scale_grad_by_freq, self.sparse)


def apply_operations(module: nn.Module, ops=None) -> nn.Module:
    """Swap the torch.nn layers of `module` for `ops`' classes of the same name, in place.

    `ops=None` or `torch.nn` leaves the module as it is. Only exact torch.nn layers are swapped,
    so applying twice (or on an already swapped network) is harmless."""
    if ops is None or ops is nn:
        return module
    exact = {getattr(nn, name): getattr(ops, name) for name in SWAPPABLE if hasattr(ops, name)}
    for m in module.modules():
        cls = exact.get(type(m))
        if cls is not None:
            m.__class__ = cls
            if not hasattr(m, "bias"):  # comfy.ops' cast helper reads `bias` on every layer (Embedding has none)
                m.bias = None
    return module


def store_weights(module: nn.Module, dtype: torch.dtype, compute_dtype: torch.dtype) -> nn.Module:
    """Store the matrices of Linear / Conv2d / Embedding layers in `dtype` (e.g. float8 e4m3fn)
    and everything else in `compute_dtype`; the layers must be cast-per-call ones (CastOps or
    comfy.ops.manual_cast). The networks must then be run in `compute_dtype` (their RunSettings;
    `load_networks(weight_dtype=...)` records it as `MemoNetworks.compute_dtype`)."""
    module.to(compute_dtype)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)) and hasattr(m, "weight"):
            if type(m) in (nn.Linear, nn.Conv2d, nn.Embedding):
                raise ValueError("store_weights needs cast-per-call layers: apply_operations(module, CastOps) first")
            m.weight.data = m.weight.data.to(dtype)
            if isinstance(m, nn.Embedding):
                m.compute_dtype = compute_dtype
    return module

"""Devices and precisions, through the host."""
from __future__ import annotations

from ...memo_model import constants as memo_constants
from .seam import current

PRECISIONS = ["auto", *memo_constants.PRECISIONS]
dtype_name = memo_constants.precision_name


def torch_device():
    return current().torch_device()


def offload_device():
    return current().offload_device()


def intermediate_device():
    return current().intermediate_device()


def free_memory():
    """Bytes of host memory available now (ComfyUI's measure: psutil's available), or None when
    the host cannot tell."""
    return current().free_memory()


def layer_operations():
    """Layer classes for the MEMO networks (ComfyUI's cast-per-layer ops), or None for torch.nn's."""
    return current().layer_operations()


def resolve_precision(precision: str, device=None):
    """"auto" -> the best dtype for the device (bf16 where supported, else fp16 on GPUs, fp32 on CPU)."""
    import torch

    if precision != "auto":
        return memo_constants.torch_dtype(precision)
    device = device if device is not None else torch_device()
    chosen = current().auto_precision(device)
    if chosen is not None:
        return chosen
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


__all__ = ["PRECISIONS", "dtype_name", "free_memory", "torch_device", "offload_device", "intermediate_device",
           "layer_operations", "resolve_precision"]

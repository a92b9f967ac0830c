"""Test double of `comfy_api.v0_0_2`: `io` (the node schema) and `ComfyExtension`."""
from __future__ import annotations

from abc import ABC, abstractmethod

from . import io


class ComfyExtension(ABC):
    """What a pack's `comfy_entrypoint` returns; ComfyUI awaits `get_node_list()` at start-up."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        ...


__all__ = ["ComfyExtension", "io"]

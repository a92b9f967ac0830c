"""Torch modules handed to the host's model manager (ComfyUI's ModelPatcher)."""
from __future__ import annotations

from .devices import dtype_name, offload_device
from .seam import current


def make_container(name: str = "MemoModels", **modules):
    """A plain `nn.Module` holding the given modules as children.

    ModelPatcher sets attributes such as `device` on the module it wraps; diffusers and
    transformers models (and `MemoNetworks`) define a read-only `device` property, so they are
    never wrapped directly, only through this container."""
    import torch

    # a named class, so ComfyUI's log says "Requested to load MemoNetworks" rather than "Module"
    cls_name = "".join(ch for ch in name.title() if ch.isalnum())
    cls_name = cls_name if cls_name.lower().startswith("memo") else "Memo" + cls_name
    container = type(cls_name, (torch.nn.Module,), {"__module__": __name__})()
    for child, module in modules.items():
        container.add_module(child, module)
    return container.eval().requires_grad_(False)


class ManagedModel:
    """Torch modules that the host's model manager loads to the compute device and offloads again.

    `load(memory_required)` must be called right before every stage that uses the modules: inside
    ComfyUI it is `load_models_gpu([patcher], memory_required)`, and other nodes' models may be
    evicted for MEMO's (and MEMO's later for theirs)."""

    def __init__(self, name: str, **modules):
        self.name = name
        self.container = make_container(name, **modules)
        self.patcher = current().manage(self.container)

    def __getattr__(self, item):
        container = self.__dict__.get("container")
        if container is not None and item in container._modules:
            return container._modules[item]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no module {item!r}")

    def load(self, memory_required: float = 0):
        """Make sure the weights are on the compute device; returns that device."""
        return current().load(self.container, self.patcher, memory_required)

    @property
    def device(self):
        for p in self.container.parameters():
            return p.device
        return offload_device()

    @property
    def dtype(self):
        for p in self.container.parameters():
            if p.is_floating_point():
                return p.dtype
        import torch

        return torch.float32

    def size_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.container.state_dict().values())

    def __repr__(self) -> str:
        return f"ManagedModel({self.name!r}, {self.size_bytes() / 2**20:.1f} MiB, {dtype_name(self.dtype)})"


__all__ = ["ManagedModel", "make_container"]

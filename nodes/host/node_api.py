"""ComfyUI's node API that the node classes are declared with: the V3 schema, numbered version
`comfy_api.v0_0_2` (not `comfy_api.latest`, which moves with every ComfyUI release).

Imported only by the node declaration modules (never by the `ops_*` functions, which run without
ComfyUI). Without `comfy_api.v0_0_2` (ComfyUI older than 0.3.48, or a plain Python) importing this
module raises :class:`NodeApiMissing`, whose text names the minimum ComfyUI version; the pack's
`__init__.py` logs it and registers nothing, so ComfyUI's start-up goes on.
"""
from __future__ import annotations

import logging

from .seam import NodeApiMissing

MIN_COMFYUI = (0, 3, 64)       # the oldest ComfyUI these nodes are tested on (pyproject: requires-comfyui)
API_VERSION = "comfy_api.v0_0_2"


def version_text(version: tuple) -> str:
    return ".".join(str(part) for part in version)


try:
    from comfy_api.v0_0_2 import ComfyExtension, io
except ImportError as exc:
    raise NodeApiMissing(
        f"the MEMO nodes need ComfyUI {version_text(MIN_COMFYUI)} or newer (they are declared with ComfyUI's V3 "
        f"node API, {API_VERSION}, which this Python cannot import: {exc}). Update ComfyUI (git pull, or "
        "ComfyUI-Manager's 'Update ComfyUI') and restart it; the command line (python -m memo_model) works "
        "without ComfyUI.") from exc


def host_version() -> tuple | None:
    """ComfyUI's own version (its `comfyui_version` module), or None where it cannot be read."""
    try:
        from comfyui_version import __version__
    except ImportError:
        return None
    try:
        return tuple(int(part) for part in str(__version__).split(".")[:3])
    except ValueError:
        return None


def warn_if_untested(log: logging.Logger) -> None:
    """ComfyUI 0.3.48 to 0.3.63 have the API but were never tested with these nodes: say so once."""
    found = host_version()
    if found is not None and found < MIN_COMFYUI:
        log.warning("MEMO: ComfyUI %s is older than %s, the oldest version these nodes are tested on; update "
                    "ComfyUI if a MEMO node misbehaves", version_text(found), version_text(MIN_COMFYUI))


__all__ = ["API_VERSION", "ComfyExtension", "MIN_COMFYUI", "NodeApiMissing", "host_version", "io", "version_text",
           "warn_if_untested"]

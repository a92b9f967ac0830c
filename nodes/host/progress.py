"""A node's progress bar (with the latest frame as preview) and the user's cancel, through the host."""
from __future__ import annotations

from typing import Optional

from .seam import current

PREVIEW_MAX_SIZE = 512        # longest side of the preview image sent with progress updates


def check_interrupt() -> None:
    """Raise if the user cancelled (ComfyUI's InterruptProcessingException, or the host's own)."""
    current().check_interrupt()


def preview_image(frame):
    """[H, W, 3] float in [0, 1] (torch) or uint8 (numpy) -> PIL image for the progress preview."""
    import numpy as np
    from PIL import Image

    if isinstance(frame, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    import torch

    arr = frame.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


class Progress:
    """A node's progress bar; every update is also an interruption point."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self.value = 0
        self._bar = current().progress_bar(self.total)

    def update(self, value: int, total: Optional[int] = None, preview=None) -> None:
        """Absolute progress; `preview` is a PIL image (or None). The same value again (the
        library's interruption points repeat the latest progress) only checks for a cancel."""
        self.total = self.total if total is None else max(1, int(total))
        value = min(int(value), self.total)
        if value == self.value:
            check_interrupt()
            return
        self.value = value
        if self._bar is not None:
            payload = ("JPEG", preview, PREVIEW_MAX_SIZE) if preview is not None else None
            self._bar.update_absolute(self.value, self.total, payload)
        check_interrupt()


__all__ = ["Progress", "check_interrupt", "preview_image", "PREVIEW_MAX_SIZE"]

"""Shared fixtures: where the golden data lives, deterministic torch settings."""
import os
from pathlib import Path

import pytest

from memo_testing.paths import PARITY

os.environ.setdefault("HF_HUB_OFFLINE", "1")




def pytest_configure(config):
    """Tiny test models run fastest on one thread, and one thread never busy-waits for a core another
    process holds (a shared 2-core CI machine made some tests 10x slower with torch's default)."""
    import torch

    torch.set_num_threads(int(os.environ.get("MEMO_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The official golden data; tests that need it skip cleanly when it is absent."""
    if not PARITY.is_dir():
        pytest.skip(f"golden data not found at {PARITY}")
    return PARITY


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random MEMO checkpoint (variant A) plus a tiny VAE in `vae/`, official layout."""
    from memo_model.apps.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("memo_tiny"), size="tiny", variant="A", seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_checkpoint):
    from memo_model import MemoPipeline

    return MemoPipeline.from_pretrained(tiny_checkpoint, tiny_checkpoint / "vae")


"""torch.compile switch: the compiled resnet/GEGLU blocks give the eager frames within parity tolerance.

Opt-in (inductor compiles C++ on the CPU, ~15-80 s): MEMO_TEST_COMPILE=1."""
import os

import pytest

from memo_model import MemoPipeline
from memo_model.apps.tiny import random_inputs
from memo_model.networks.loading import load_networks

pytestmark = pytest.mark.skipif(os.environ.get("MEMO_TEST_COMPILE") != "1",
                                reason="torch.compile test is opt-in: MEMO_TEST_COMPILE=1")


def test_compiled_pipeline_matches_eager(tiny_checkpoint, tiny_pipeline):
    inputs = random_inputs(16, seed=6)
    eager = tiny_pipeline.generate(*inputs, num_inference_steps=1, seed=2).frames
    nets = load_networks(tiny_checkpoint)
    pipe = MemoPipeline(nets, tiny_pipeline.vae, compile=True)
    compiled_blocks = [m for m in nets.modules() if getattr(m, "_memo_compiled", False)]
    assert len(compiled_blocks) > 50
    frames = pipe.generate(*inputs, num_inference_steps=1, seed=2).frames
    assert float((frames - eager).abs().max()) < 5e-5

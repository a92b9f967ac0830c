"""Opt-in: our pipeline against the official code itself, not only its golden data.

Runs when MEMO_OFFICIAL_DIR is a checkout of github.com/memoavatar/memo and MEMO_OFFICIAL_PYTHON (default:
this interpreter) can import it (diffusers, einops; no xformers needed). Tiny random weights, drawn
per parameter name so both implementations get the same ones; the full-width comparison is
`python -m benchmarks.official_compare` (see docs/performance.md, "Against the official code").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from memo_testing.paths import REPO

OFFICIAL = os.environ.get("MEMO_OFFICIAL_DIR")
PYTHON = os.environ.get("MEMO_OFFICIAL_PYTHON", sys.executable)
ROOT = REPO
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not OFFICIAL, reason="MEMO_OFFICIAL_DIR (a memoavatar/memo "
                                                   "checkout) is not set")]


def test_same_frames_as_the_official_code_and_both_planners_match_real_runs():
    done = subprocess.run([PYTHON, "-m", "benchmarks.official_compare", "--official", OFFICIAL, "measure",
                           "--model-size", "tiny", "--size", "64", "--steps", "2", "--no-timing"], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    d = json.loads(done.stdout)
    assert d["max_abs_diff_ours_vs_official"] < 5e-5
    theirs, ours = d["official_tracked"], d["ours_tracked"]
    assert theirs["weights_gb"] == ours["weights_gb"] > 0.05
    # each planner (meta tensors) predicts the live bytes its implementation really held; the real
    # runs also count host-side tensors the plans leave out (inputs, decoded frames: a few MB here)
    assert abs(d["official_planned_peak_gb"] - theirs["tracked_peak_gb"]) <= 0.005
    assert abs(d["ours_planned_peak_gb"] - ours["tracked_peak_gb"]) <= 0.005
    assert ours["tracked_peak_gb"] <= theirs["tracked_peak_gb"]


def test_gpu_check_runs_the_official_code_beside_ours():
    done = subprocess.run([PYTHON, "-m", "benchmarks.gpu_check", "--tiny", "--steps", "1", "--no-parity", "--configs",
                           "default", "--official", OFFICIAL], capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    official = report["official"]
    assert official["weights_gb"] > 0.05 and official["seconds_per_frame"] > 0
    assert official["max_memory_allocated_gb"] > official["weights_gb"]
    assert "ours_default_minus_official_gb" in official and "_inputs" not in report["runs"]

"""benchmarks/gpu_check.py runs its CPU path (tiny sizes) end to end, so it cannot rot before a GPU shows up."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_path():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--steps", "1"],
                         capture_output=True, text=True, timeout=900, check=False,
                         env={**{k: v for k, v in os.environ.items() if k != "MEMO_OFFICIAL_DIR"},
                              "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.index("{"):])
    parity = report["parity"]
    if "skipped" not in parity:
        assert parity["default_pass"] and parity["low_pass"], parity
        assert parity["default_max_abs_diff"] < 5e-5 and parity["low_max_abs_diff"] < 5e-5
    runs = report["runs"]
    assert runs["model_size"] == "tiny" and runs["device"] == "cpu"
    assert set(runs["configs"]) == {"default", "low", "fp8", "partial"}
    for name, entry in runs["configs"].items():
        assert entry["seconds_per_frame"] > 0 and entry["max_memory_allocated_gb"] > 0, name
        assert entry["planned_peak_gb"] > 0, name
    for name in ("default", "low", "fp8"):  # weights on the device: the plan tracks the measurement
        assert abs(runs["configs"][name]["planned_vs_measured"]) < 0.15, runs["configs"][name]
    assert runs["configs"]["fp8"]["max_memory_allocated_gb"] < runs["configs"]["default"]["max_memory_allocated_gb"]

"""Where the time of a full-width CPU generation goes: one JSON line of CPU time per kind of kernel.

Builds the released-size networks with random weights (about 10.7 GB in fp32; take the shared
full-width lock on a shared machine), runs one generation under torch.profiler and groups the
operators' self time into convolution, matrix products, attention, copies and element-wise work.
Also prints the process's user/system CPU seconds and minor page faults during the generation
(system time is mostly the kernel zeroing freshly allocated pages).

    flock /tmp/fullwidth.lock env OMP_NUM_THREADS=1 python3 benchmarks/speed_profile.py --size 128 --steps 2
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = {
    "convolution": ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::slow_conv_dilated2d"),
    "matrix_products": ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention",
                  "aten::_flash_attention_forward"),
    "copies": ("aten::copy_", "aten::cat", "aten::clone", "aten::index", "aten::repeat_interleave",
               "aten::upsample_nearest2d"),
    "normalisation": ("aten::native_group_norm", "aten::native_layer_norm", "aten::_softmax"),
}


def kind_of(name: str) -> str:
    for kind, names in KINDS.items():
        if name in names:
            return kind
    return "element_wise_and_other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="square frame size in pixels (multiple of 8)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="also list this many most expensive operators")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from memo_model.apps.memory_plan import full_size_networks
    from memo_model.apps.tiny import random_inputs
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.generation.vae import DiffusersVae

    torch.set_num_threads(1)
    nets, vae = full_size_networks(torch.float32, "cpu", "A")
    pipe = MemoPipeline(nets, DiffusersVae(vae))
    _, face, _, emotion = random_inputs(16, size=8, seed=0, size_name="tiny")
    reference = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = nets.audio_proj.cfg
    features = torch.randn(16, cfg.seq_len, cfg.blocks, cfg.channels, generator=torch.Generator().manual_seed(1))

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pipe.generate(reference, face, features, emotion, num_inference_steps=args.steps, guidance_scale=3.5)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)

    totals: dict[str, float] = {}
    ops = []
    for event in prof.key_averages():
        self_s = event.self_cpu_time_total / 1e6
        totals[kind_of(event.key)] = totals.get(kind_of(event.key), 0.0) + self_s
        ops.append((self_s, event.key, event.count))
    profiled = sum(totals.values())
    ops.sort(reverse=True)
    print(json.dumps({
        "size": args.size, "frames": 16, "steps": args.steps, "seconds": round(seconds, 1),
        "seconds_per_frame": round(seconds / 16, 2),
        "user_s": round(after.ru_utime - before.ru_utime, 1), "system_s": round(after.ru_stime - before.ru_stime, 1),
        "minor_page_faults": after.ru_minflt - before.ru_minflt,
        "share": {k: round(v / profiled, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": name, "self_s": round(s, 2), "calls": n} for s, name, n in ops[:args.top]],
    }))


if __name__ == "__main__":
    main()

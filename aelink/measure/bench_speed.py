"""Training speed: median time of a training step, as seconds per 60,000-image epoch.

`fp32` is how `aelink train` steps in fp32 (the default for every preset but the seed on CPUs with
AVX-512 BF16): channels-last, the batch split over one thread per core (aelink/training/steps.py), the
fused paths (aelink/training/fused). `bf16` is the same under bf16 autocast (the seed's default on such
CPUs). Beside them, in the same run, so that the ratios are measured rather than remembered: each
without the fused paths, fp32 in the default memory layout, and fp32 with one step thread whose ops use
all the threads (torch's intra-op parallelism).
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from aelink.training.autoencoder import Autoencoder
from aelink.training.runtime import Objective, keep_freed_memory
from aelink.training.steps import Steps, cores, plan
from shared.codec.config import preset

# variant -> (memory format, bf16 autocast, step threads: None = one per thread, fused paths)
VARIANTS = {
    "fp32": (torch.channels_last, False, None, True),
    "fp32-unfused": (torch.channels_last, False, None, False),
    "fp32-contiguous": (torch.contiguous_format, False, None, True),
    "fp32-intra-op": (torch.channels_last, False, 1, True),
    "bf16": (torch.channels_last, True, None, True),
    "bf16-unfused": (torch.channels_last, True, None, False),
}


def time_steps(name: str, variant: str, batch_size: int, steps: int, repeats: int, threads: int) -> list[float]:
    """Seconds per training step, one median per repeat, after a warm-up."""
    torch.manual_seed(0)
    fmt, bf16, shards, fused = VARIANTS[variant]
    shards, intra = plan(threads, shards, 1, batch_size)  # as `aelink train` plans its threads
    torch.set_num_threads(intra)
    model = Autoencoder(preset(name)).to(memory_format=fmt)
    model.use_fused(fused)
    optimizer = torch.optim.Adam(model.parameters())
    runner = Steps(Objective(model), list(model.parameters()), shards, bf16)
    x = torch.rand(batch_size, 1, 28, 28).contiguous(memory_format=fmt)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        runner.run(x, x)
        optimizer.step()

    try:
        for _ in range(5):
            step()
        medians = []
        for _ in range(repeats):
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            medians.append(statistics.median(times))
    finally:
        runner.close()
    return medians


def bench_speed(presets: list[str], batch_size: int = 128, steps: int = 30, repeats: int = 3,
                train_images: int = 60_000, threads: int | None = None) -> list[dict]:
    """One row per preset and variant; `threads` defaults to the cores this process may use."""
    threads = threads or cores()
    steps_per_epoch = math.ceil(train_images / batch_size)
    keep_freed_memory()  # as `aelink train` does: without it every step pays page faults
    rows = []
    for name in presets:
        for variant in VARIANTS:
            per_step = statistics.median(time_steps(name, variant, batch_size, steps, repeats, threads))
            rows.append({"preset": name, "variant": variant, "threads": threads,
                         "step_threads": plan(threads, VARIANTS[variant][2], 1, batch_size)[0],
                         "ms_per_step": per_step * 1e3, "s_per_epoch": per_step * steps_per_epoch})
    return rows

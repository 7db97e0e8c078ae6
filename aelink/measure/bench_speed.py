"""Training speed: median time of a training step, as seconds per 60,000-image epoch.

`default` is how `aelink train` steps: channels-last, the batch split over one thread per core
(aelink/training/steps.py). Beside it, in the same run, so that the ratios are measured rather than
remembered: the default memory layout, one step thread whose ops use all the threads (torch's intra-op
parallelism), and bf16 autocast.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from aelink.training.autoencoder import Autoencoder
from aelink.training.runtime import Objective, keep_freed_memory
from aelink.training.steps import Steps, cores
from shared.codec.config import preset

# variant -> (memory format, bf16 autocast, step threads: None = one per thread)
VARIANTS = {
    "default": (torch.channels_last, False, None),
    "contiguous": (torch.contiguous_format, False, None),
    "intra-op": (torch.channels_last, False, 1),
    "bf16": (torch.channels_last, True, None),
}


def time_steps(name: str, variant: str, batch_size: int, steps: int, repeats: int, threads: int) -> list[float]:
    """Seconds per training step, one median per repeat, after a warm-up."""
    torch.manual_seed(0)
    fmt, bf16, shards = VARIANTS[variant]
    shards = shards or min(threads, batch_size)
    torch.set_num_threads(max(1, threads // shards))
    model = Autoencoder(preset(name)).to(memory_format=fmt)
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
                         "step_threads": VARIANTS[variant][2] or min(threads, batch_size),
                         "ms_per_step": per_step * 1e3, "s_per_epoch": per_step * steps_per_epoch})
    return rows

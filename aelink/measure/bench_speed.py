"""Training speed: median time of a training step, as seconds per 60,000-image epoch.

Channels-last is what `aelink train` uses; the default memory layout and bf16 autocast are timed beside
it, in the same run, so the ratios between them are measured rather than remembered.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from aelink.training.autoencoder import Autoencoder
from aelink.training.runtime import keep_freed_memory
from shared.codec.config import preset

# variant -> (memory format, bf16 autocast); bf16 is timed to show what it would buy, training uses fp32
VARIANTS = {
    "channels_last": (torch.channels_last, False),
    "contiguous": (torch.contiguous_format, False),
    "channels_last+bf16": (torch.channels_last, True),
}


def time_steps(name: str, variant: str, batch_size: int, steps: int, repeats: int) -> list[float]:
    """Seconds per training step, one median per repeat, after a warm-up."""
    torch.manual_seed(0)
    fmt, bf16 = VARIANTS[variant]
    model = Autoencoder(preset(name)).to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.rand(batch_size, 1, 28, 28).contiguous(memory_format=fmt)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(x, x)
        loss.backward()
        optimizer.step()

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
    return medians


def bench_speed(presets: list[str], batch_size: int = 128, steps: int = 30, repeats: int = 3,
                train_images: int = 60_000) -> list[dict]:
    steps_per_epoch = math.ceil(train_images / batch_size)
    keep_freed_memory()  # as `aelink train` does: without it every step pays page faults
    rows = []
    for name in presets:
        for variant in VARIANTS:
            per_step = statistics.median(time_steps(name, variant, batch_size, steps, repeats))
            rows.append({"preset": name, "variant": variant, "threads": torch.get_num_threads(),
                         "ms_per_step": per_step * 1e3, "s_per_epoch": per_step * steps_per_epoch})
    return rows

"""What a training process sets up around the model: the allocator, the seed preset's Keras start, and
the process group when it runs under torchrun (DistributedDataParallel: gloo on CPU)."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

# Keras's Adam epsilon; the seed preset uses it (issue 12), the other presets keep PyTorch's 1e-8.
KERAS_ADAM_EPS = 1e-7
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed activation buffers instead of returning them to the kernel.

    A training step allocates and frees a dozen 12.8 MB activations (128 x 32 x 28 x 28 floats). Above
    glibc's default mmap threshold each is a fresh mmap, and every page of it faults on first touch: the
    seed's step took 78 ms of CPU time with glibc's defaults and 47 ms with this (one thread,
    notes/train-speed). Returns False where there is no glibc (macOS, musl): nothing changes there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # 32 MB is glibc's ceiling for the mmap threshold on 64-bit; the trim threshold keeps 1 GB in the heap
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20) and mallopt(_M_TRIM_THRESHOLD, 1 << 30)
                and mallopt(_M_TOP_PAD, 64 << 20))


def keras_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as Keras starts a Conv2D / Conv2DTranspose.

    PyTorch's default (uniform +-1/sqrt(fan_in), biases too) starts the seed model further from a
    useful reconstruction: after 2 epochs its validation BCE was above Keras's (issue 12).
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # fans as Keras computes them: a ConvTranspose2d's weight is (in, out, k, k), Keras's
            # (k, k, out, in); the sum fan_in + fan_out, all Glorot needs, is the same either way
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def keras_epsilon(optimizer: torch.optim.Optimizer, step: int) -> None:
    """Keras's Adam adds epsilon to sqrt(v) before the bias correction, PyTorch's after it: the same
    update at step t (from 1) needs PyTorch's eps = Keras's / sqrt(1 - beta2**t), 3.2e-6 at the first
    step, falling to 1.1e-7 by the end of the second epoch."""
    for group in optimizer.param_groups:
        group["eps"] = KERAS_ADAM_EPS / math.sqrt(1.0 - group["betas"][1] ** step)


def start_as_keras(model: nn.Module) -> float:
    """Keras's start for a model (Glorot weights, zero biases); returns Keras's Adam epsilon."""
    keras_init(model)
    return KERAS_ADAM_EPS


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes: one, or torchrun's WORLD_SIZE of them."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that validates, logs and writes the checkpoint and the halves."""
        return self.rank == 0

    @classmethod
    def start(cls) -> Processes:
        """Join torchrun's process group when launched by it (WORLD_SIZE > 1); else a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            # gloo: the trainer runs on the CPU (nccl would need the model and batches on GPUs)
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def stop(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's part of a global batch: every world-th image from its rank on, as
        DistributedSampler deals a shuffled order, so the parts together are the global batch."""
        return batch if self.world == 1 else batch[self.rank::self.world]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the processes (loss totals and counts for the epoch's log)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """What a training step calls: `model.terms(x, target)` as a module's forward, wrapped in
        DistributedDataParallel under torchrun, whose backward averages the gradients over the processes."""
        objective = Objective(model)
        if self.world == 1:
            return objective
        # broadcast_buffers off: the only buffers are the rd halves' coding tables, unused in training
        return nn.parallel.DistributedDataParallel(objective, broadcast_buffers=False)


class Objective(nn.Module):
    """A model's training terms as a forward, which DistributedDataParallel can wrap."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
        return self.model.terms(x, target, generator)


def quiet(_line: str) -> None:
    """A log that prints nothing: the processes after the first under torchrun."""

"""A loaded half's forward as one TorchScript graph: what the batch thread calls for every batch.

Why: each PyTorch op called from Python lets go of the GIL while it computes and takes it back after.
Under load the event loop holds the GIL most of the time, so the batch thread waited for it once per op
of the forward (about fifteen), each wait up to the switch interval. A traced module runs the whole
forward in C++ and lets go of the GIL once. Measured with hey, 64 clients, compact32's decoder, two
interleaved rounds: 2,199 and 1,915 req/s eager, 2,553 and 2,571 traced.

Tracing records the very ATen ops the eager forward runs, so the outputs are the same bits (a test
checks every shipped half). It records one path through the Python code and one input shape; the
services call the half with exactly MAX_BATCH rows every time, and the halves' forwards have no
branches on values. Anything tracing cannot follow falls back to the eager module, with a warning.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger("aelink.service")


def traced_forward(module: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """module's forward traced on `example` (the one shape it will be called with), or the module itself
    if it cannot be traced. The loaders hand over modules in eval mode, as tracing records them."""
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # torch.jit.trace is deprecated in favour of torch.export/compile, which do not give a
            # single GIL-free call without a C++ toolchain at start-up; it is still supported in the
            # pinned torch (the tests run it), and the eager fallback below keeps a later torch working.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.trace(module, example, check_trace=False)
    except Exception as e:  # noqa: BLE001 - serving eagerly is slower, not wrong
        log.warning("serving the %s eagerly: tracing its forward failed (%s)", type(module).__name__, e)
        return module

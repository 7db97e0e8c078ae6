"""The services run each half's forward traced (shared.service.graph): the same bits as the eager module."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aelink.measure.evaluate import model_dirs
from services.decoder.main import SPEC as DECODER
from services.encoder.main import SPEC as ENCODER
from shared.service.graph import traced_forward
from shared.service.runtime import HalfRuntime

MAX_BATCH = 16
SHIPPED = [p.name for p in model_dirs(Path(__file__).parents[2] / "weights")]
SPECS = {"encoder": ENCODER, "decoder": DECODER}


@pytest.mark.parametrize("half", ["encoder", "decoder"])
@pytest.mark.parametrize("model", SHIPPED)
def test_the_traced_forward_gives_the_eager_bits(weights_dir, model, half):
    runtime = HalfRuntime(SPECS[half], weights_dir / model / f"{half}.safetensors", threads=1, max_batch=MAX_BATCH)
    runtime.load()
    assert isinstance(runtime.forward, torch.jit.ScriptModule)
    gen = np.random.default_rng(0)
    shape = runtime.batch_shape
    # inputs of the range each half sees (pixels in [0, 1]; latents of a few units), over enough calls
    # for TorchScript's profiling executor to have optimised the graph
    scale = 1.0 if half == "encoder" else 4.0
    for _ in range(6):
        x = (gen.random(shape, dtype=np.float32) * scale).astype(np.float32)
        with torch.inference_mode():
            eager = runtime.module(torch.from_numpy(x)).numpy()
        assert np.array_equal(runtime.run(x), eager)
    # another size runs the eager module: the trace holds one shape
    odd = gen.random((3, *shape[1:]), dtype=np.float32)
    with torch.inference_mode():
        assert np.array_equal(runtime.run(odd), runtime.module(torch.from_numpy(odd)).numpy())


class Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> str:
        return "not a tensor"


def test_a_module_that_cannot_be_traced_is_served_eagerly(caplog):
    module = Untraceable()
    with caplog.at_level(logging.WARNING, logger="aelink.service"):
        assert traced_forward(module, torch.zeros(2, 3)) is module
    assert "serving the Untraceable eagerly" in caplog.text

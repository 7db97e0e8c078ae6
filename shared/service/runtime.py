"""One half of the model, loaded, verified, warmed up and run for requests.

The service hands in its own loader (`load_encoder` or `load_decoder`), so this module, shared by both
services, imports neither half.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.codec.config import ModelConfig
from shared.codec.weights import HalfWeights

log = logging.getLogger("aelink.service")
WARMUP_BATCHES = (1, 16)  # the first call of each new shape is slow; pay it before turning ready


@dataclass(frozen=True)
class HalfSpec:
    """What makes a service the sender or the receiver."""

    half: str  # "encoder" or "decoder", also the weights file's stem
    load: Callable[[Path], tuple[nn.Module, HalfWeights]]
    input_shape: Callable[[ModelConfig], tuple[int, ...]]  # shape of one input item


class HalfRuntime:
    def __init__(self, spec: HalfSpec, path: Path, threads: int) -> None:
        self.spec, self.path, self.threads = spec, path, threads
        self.module: nn.Module | None = None
        self.weights: HalfWeights | None = None
        self.ready = False
        self.not_ready_reason = "weights not loaded yet"
        self._lock = threading.Lock()  # one forward at a time: the threads setting bounds CPU use

    def load(self) -> HalfWeights:
        """Load and verify the weights; a WeightsError (naming the file) stops start-up."""
        torch.set_num_threads(self.threads)
        self.module, self.weights = self.spec.load(self.path)
        self.not_ready_reason = "warming up"
        log.info("loaded %s %s (fingerprint %s) from %s", self.spec.half, self.config.name,
                 self.weights.fingerprint, self.path)
        return self.weights

    @property
    def config(self) -> ModelConfig:
        assert self.weights is not None, "load() first"
        return self.weights.config

    def warm_up(self) -> None:
        try:
            for n in WARMUP_BATCHES:
                self.run(np.zeros((n, *self.spec.input_shape(self.config)), np.float32))
        except Exception as e:  # keep serving /healthz; /readyz says why it never got ready
            self.not_ready_reason = f"warm-up failed: {e}"
            log.exception("warm-up failed")
            return
        self.ready = True
        self.not_ready_reason = ""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, *input_shape) -> float32 outputs; call from a worker thread, not the event loop."""
        assert self.module is not None, "load() first"
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with self._lock, torch.inference_mode():
            return self.module(x).numpy()

    # Entropy coding with the tables both halves of an rd model hold (`module.entropy`). Integer work
    # in pure Python that only reads the tables: no lock; call from a worker thread.

    def compress(self, latents: np.ndarray) -> list[bytes]:
        """float32 latents (N, *code_shape) -> one entropy-coded code each."""
        return self.module.entropy.compress(torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)))

    def decompress(self, payloads: tuple[bytes, ...]) -> np.ndarray:
        """Entropy-coded codes -> float32 latents (N, *code_shape); CodeError names a bad code."""
        return self.module.entropy.decompress(payloads).numpy()

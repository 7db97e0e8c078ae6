"""A request's share of a dynamic batch (`Job`), as the batch thread runs it (shared.service.runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Entropic:
    """What a decoder job's `prepare` returns for entropy-coded codes: the batch decodes them together."""

    payloads: tuple[bytes, ...]


class Job:
    """One request's share of a batch. In the batch thread, in order: `prepare()` parses and checks the
    request and returns its model inputs (float32, (size, *input_shape)) or `Entropic` codes to decode
    first; then `finish(outputs, codes)` makes its answer from its slice of the outputs (and of the
    batch's entropy-coded codes, when `entropy_out`). An exception from either is this job's alone."""

    size: int = 1  # images it brings, counted against MAX_BATCH and MAX_QUEUE
    entropy_out: bool = False  # entropy-code the outputs (rd encoders' rc format)

    def prepare(self) -> np.ndarray | Entropic:
        raise NotImplementedError

    def decoded(self, latents: np.ndarray) -> np.ndarray:
        """Check the latents its Entropic codes decoded to (may raise)."""
        return latents

    def undecodable(self, error: Exception) -> Exception:
        """The exception to answer when its Entropic codes do not decode."""
        return error

    def finish(self, outputs: np.ndarray, codes: list[bytes] | None) -> Any:
        return outputs

"""`aelink sample` and `aelink interpolate` over HTTP: the decoder service draws, this only asks and saves.

Like `aelink send`, it never loads weights: without service URLs it starts the services it needs as
local processes (the same code path as against remote ones, and the receiver alone holds the decoder).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from PIL import Image

from aelink.client import OCTET, CodecClient, LocalService
from aelink.http_calls import call

SCALE, GAP = 2, 2


class DrawClient(CodecClient):
    """The codec client plus the decoder's drawing endpoints."""

    def sample(self, n: int, seed: int | None, temperature: float, prior: str | None = None
               ) -> tuple[np.ndarray, int, str]:
        """n digits from the decoder's prior ("fitted", "standard"; None: the model's default) ->
        (uint8 (n,28,28), the seed used, the prior used)."""
        body = {"n": n, "temperature": temperature, **({"seed": seed} if seed is not None else {}),
                **({"prior": prior} if prior is not None else {})}
        r = call(self.decoder, "POST", "/v1/sample", self.retry, json=body, headers={"Accept": OCTET})
        images = np.frombuffer(r.content, dtype=np.uint8).reshape(-1, 28, 28)
        return images, int(r.headers["X-Aelink-Seed"]), r.headers.get("X-Aelink-Prior", "standard")

    def interpolate(self, codes: bytes, steps: int) -> np.ndarray:
        """The binary form of two codes -> uint8 (steps,28,28) from the first's decode to the second's."""
        r = call(self.decoder, "POST", "/v1/interpolate", self.retry, params={"steps": steps}, content=codes,
                  headers={"Content-Type": OCTET, "Accept": OCTET})
        return np.frombuffer(r.content, dtype=np.uint8).reshape(-1, 28, 28)


@contextlib.contextmanager
def services(encoder_url: str | None, decoder_url: str | None, halves: tuple[str, ...], model: str | None,
             weights_dir: Path | None, token: str | None):
    """A DrawClient on the given URLs; a half without a URL is started locally for the duration."""
    env = {f"AELINK_{h.upper()}_{k}": str(v) for h in halves
           for k, v in (("MODEL", model), ("WEIGHTS_DIR", weights_dir), ("TOKEN", token)) if v}
    started = [LocalService(h, env=env).start() for h in halves
               if (encoder_url if h == "encoder" else decoder_url) is None]
    try:
        for s in started:
            s.wait_ready()
        urls = {s.half: s.url for s in started}
        # `aelink sample` needs no encoder: its client half points nowhere and is never called
        with DrawClient(encoder_url or urls.get("encoder", "http://127.0.0.1:9"),
                        decoder_url or urls["decoder"], token) as client:
            yield client
    finally:
        for s in started:
            s.stop()


def save_grid(images: np.ndarray, columns: int, path: str | Path) -> None:
    """uint8 (N,28,28) as a grid of `columns`, white gaps between, each pixel drawn 2x2."""
    rows = -(-len(images) // columns)
    side = images.shape[-1] * SCALE
    canvas = Image.new("L", (GAP + columns * (side + GAP), GAP + rows * (side + GAP)), color=255)
    for i, img in enumerate(images):
        tile = Image.fromarray(np.ascontiguousarray(img), mode="L").resize((side, side), Image.NEAREST)
        canvas.paste(tile, (GAP + (i % columns) * (side + GAP), GAP + (i // columns) * (side + GAP)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)

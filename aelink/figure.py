"""The figure from our spec: one row per stage (originals, [noisy,] reconstructions), as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from aelink.data.datasets import add_noise

SCALE, GAP, LABEL_W = 3, 4, 110


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N,1,28,28) or (N,28,28) floats in [0,1] -> (N,28,28) uint8, rounded."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    a = a.reshape(a.shape[0], a.shape[-2], a.shape[-1])
    if a.dtype == np.uint8:
        return a
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def save_figure(rows: list, labels: list[str], path: str | Path) -> None:
    rows = [to_uint8(r) for r in rows]
    n, side = max(len(r) for r in rows), rows[0].shape[-1] * SCALE
    width = LABEL_W + n * (side + GAP) + GAP
    height = len(rows) * (side + GAP) + GAP
    canvas = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(canvas)
    for r, (row, label) in enumerate(zip(rows, labels, strict=True)):
        top = GAP + r * (side + GAP)
        draw.text((6, top + side // 2 - 6), label, fill=0)
        for i, img in enumerate(row):
            tile = Image.fromarray(img, mode="L").resize((side, side), Image.NEAREST)
            canvas.paste(tile, (LABEL_W + GAP + i * (side + GAP), top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


@torch.no_grad()
def figure_for(model, clean: torch.Tensor, noise: float, seed: int, path: Path) -> None:
    """Originals over reconstructions; with noise: clean, noisy, denoised."""
    model.eval()
    rows = [clean]
    inputs = clean
    if noise:
        inputs = add_noise(clean, noise, torch.Generator().manual_seed(seed + 2))
        rows.append(inputs)
    rows.append(model(inputs))
    labels = ["original", "noisy", "denoised"] if noise else ["original", "reconstruction"]
    save_figure(rows, labels, path)

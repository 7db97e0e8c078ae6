"""`aelink classifier train`: fit the judge on the training images, measure it on the test images."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from aelink.judge.net import DEFAULT_PATH, DigitClassifier, save_classifier
from aelink.judge.score import accuracy

SHIFT = 2  # pixels: random shifts of up to 2 px, the usual MNIST augmentation (no blur, no codec outputs)


@dataclass
class ClassifierOptions:
    out: Path = DEFAULT_PATH
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    shift: int = SHIFT
    train_subset: int | None = None
    threads: int | None = None


def shifted(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Each image (N,1,28,28) moved by its own random offset of up to `pad` pixels, zeros shifted in."""
    if not pad:
        return x
    side = x.shape[-1]
    padded = F.pad(x, (pad,) * 4)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, len(x)), generator=generator)
    out = torch.empty_like(x)
    for i in range(2 * pad + 1):  # one slice per offset: 25 batched copies, not one per image
        for j in range(2 * pad + 1):
            m = (dy == i) & (dx == j)
            if m.any():
                out[m] = padded[m][:, :, i:i + side, j:j + side]
    return out


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                     opts: ClassifierOptions, log=print) -> tuple[DigitClassifier, dict]:
    """Adam with a cosine schedule; the test accuracy after each epoch in the history. Writes opts.out
    with the final test accuracy in its metadata and history.json beside it."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    train_x, train_y = train_x[: opts.train_subset], train_y[: opts.train_subset].long()
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    steps = opts.epochs * -(-len(train_x) // opts.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = []
    for epoch in range(1, opts.epochs + 1):
        start, total = time.perf_counter(), 0.0
        model.train()
        for idx in torch.randperm(len(train_x), generator=gen).split(opts.batch_size):
            loss = F.cross_entropy(model(shifted(train_x[idx], gen, opts.shift)), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch, "train_loss": total / len(train_x), "seconds": time.perf_counter() - start,
               "test_accuracy": accuracy(model.predict(test_x), test_y)}
        history.append(row)
        log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    model.eval()
    info = {"test_accuracy": history[-1]["test_accuracy"], "test_images": len(test_x),
            "train_images": len(train_x), **{k: v for k, v in asdict(opts).items() if k not in ("out", "threads")},
            "parameters": sum(p.numel() for p in model.parameters())}
    save_classifier(model, opts.out, info)
    (Path(opts.out).parent / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return model, info

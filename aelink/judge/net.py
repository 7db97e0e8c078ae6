"""The judge's network (a LeNet-sized CNN) and its weights file, `weights/classifier/classifier.safetensors`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from shared.codec.weights import read_tensors, write_tensors

FORMAT = "aelink-classifier-v1"
DEFAULT_PATH = Path("weights") / "classifier" / "classifier.safetensors"
CLASSES = 10


class DigitClassifier(nn.Module):
    """Conv(16, 5x5) > pool > Conv(32, 5x5) > pool > 64 > 10: 65,162 parameters, 261 KB as float32.
    No dropout, as LeNet: a judge should be sure of real digits (with dropout 0.25 a prototype was
    confident, p >= 0.9, on only 95.8% of the test originals, at the same accuracy)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)  # 28x28 -> pool -> 14x14
        self.conv2 = nn.Conv2d(16, 32, 5)  # 10x10 -> pool -> 5x5
        self.fc1 = nn.Linear(32 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N,1,28,28) in [0,1] -> logits (N,10)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Images (N,1,28,28) or (N,28,28), floats in [0,1] or uint8 -> class probabilities (N,10)."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if images.dim() == 3:
            images = images[:, None]
        self.eval()
        return torch.cat([F.softmax(self(x.float()), 1) for x in images.split(batch)])

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The predicted class (N,) of each image."""
        return self.probabilities(images).argmax(1)


def save_classifier(model: DigitClassifier, path: str | Path, info: dict) -> None:
    """The weights and what was measured of them (test accuracy, epochs, ...) in one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_tensors(tensors, path, {"format": FORMAT, "info": json.dumps(info, sort_keys=True)})


def load_classifier(path: str | Path = DEFAULT_PATH) -> tuple[DigitClassifier, dict]:
    """The judge in eval mode and its recorded info; a ValueError names a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no classifier weights; train them with `aelink classifier train`")
    meta, tensors = read_tensors(path)  # its WeightsError is a ValueError naming the file
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an aelink classifier (format {meta.get('format')!r})")
    model = DigitClassifier()
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise ValueError(f"{path}: tensors do not fit the classifier ({e})") from None
    return model.eval().requires_grad_(False), json.loads(meta.get("info", "{}"))

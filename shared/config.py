"""The one source of shapes: a model is fully described by a `ModelConfig`.

Every weights file stores its config as JSON beside the tensors, so a half can be rebuilt from the file
alone. Two kinds of model share the same layout:

- `seed`: the reference from our spec. Conv(same)+MaxPool per stage; the latent is the last feature map
  (7x7x32 for the preset), larger than the image, so it is a quality reference, not a codec.
- `compact`: strided convs, then a linear bottleneck of `code_size` numbers: a true codec.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

Kind = Literal["seed", "compact"]
Loss = Literal["bce", "mse", "l1"]
KINDS: tuple[str, ...] = ("seed", "compact")
LOSSES: tuple[str, ...] = ("bce", "mse", "l1")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    kind: Kind = "compact"
    code_size: int | None = 32  # compact only; the seed's code is its last feature map
    widths: tuple[int, ...] = (32, 64, 128)  # channels per encoder stage; depth = len(widths)
    loss: Loss = "bce"
    noise: float = 0.0  # sigma of the Gaussian noise added to inputs while training (denoising)
    image_size: int = 28
    channels: int = 1
    extra: dict[str, str] = field(default_factory=dict, compare=False)  # free-form notes

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be one or more positive ints, not {self.widths!r}")
        if self.kind == "compact" and (self.code_size is None or self.code_size < 1):
            raise ValueError("a compact model needs code_size >= 1")
        if self.kind == "seed":
            object.__setattr__(self, "code_size", None)
            if self.image_size % (2 ** self.depth):
                raise ValueError(f"seed: image_size {self.image_size} must divide by 2**depth")
        if self.noise < 0:
            raise ValueError("noise must be >= 0")
        if self.spatial_sizes[-1] < 1:
            raise ValueError(f"depth {self.depth} is too deep for {self.image_size}px images")

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def spatial_sizes(self) -> tuple[int, ...]:
        """Feature-map side after each encoder stage, input first: 28, 14, 7, 4 for depth 3."""
        sizes = [self.image_size]
        for _ in self.widths:
            sizes.append(math.ceil(sizes[-1] / 2))
        return tuple(sizes)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of the last feature map (C, H, W): the seed's code, the compact bottleneck's input."""
        side = self.spatial_sizes[-1]
        return (self.widths[-1], side, side)

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.code_size,) if self.kind == "compact" else self.feature_shape

    @property
    def code_numel(self) -> int:
        return math.prod(self.code_shape)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def to_json(self) -> str:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("model config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**d)

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS: dict[str, ModelConfig] = {
    p.name: p
    for p in (
        ModelConfig("seed", kind="seed", widths=(32, 32), loss="bce"),
        ModelConfig("compact16", code_size=16, widths=(32, 64, 128), loss="mse"),
        ModelConfig("compact32", code_size=32, widths=(32, 64, 128), loss="mse"),
        ModelConfig("compact64", code_size=64, widths=(32, 64, 128), loss="mse"),
        ModelConfig("denoise32", code_size=32, widths=(32, 64, 128), loss="mse", noise=0.4),
    )
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None

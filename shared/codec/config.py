"""The one source of shapes: a model is fully described by a `ModelConfig`.

Every weights file stores its config as JSON beside the tensors, so a half can be rebuilt from the file
alone. Three kinds of model share the same layout:

- `seed`: the reference from our spec. Conv(same)+MaxPool per stage; the latent is the last feature map
  (7x7x32 for the preset), larger than the image, so it is a quality reference, not a codec.
- `compact`: strided convs, then a linear bottleneck of `code_size` numbers: a true codec.
- `rd`: strided convs, then a latent that is quantized and entropy coded with a learned prior, trained
  for distortion + `lmbda` * bits (rate-distortion). Its latent (`latent`) is a vector of `code_size`
  numbers ("vector", as compact; a density per number) or a map of `code_size` channels on the last
  feature map's grid, whose positions share their channel's density ("spatial", as in Balle et al.'s
  factorized-prior model: background quantizes to zeros) or each have their own ("positional": a
  digit's border is nearly always empty, its centre is not).
- `vae`: the compact layout as a variational autoencoder: the encoder gives a mean and a log-variance,
  training minimizes reconstruction + `beta` * KL(posterior || N(0, I)), and the code sent is the mean.
  Its prior N(0, I) lets the receiver draw new digits alone; with `prior_components` K > 0 the decoder
  half also carries a K-component Gaussian mixture fitted to the training set's codes after training
  (ex-post density estimation, Ghosh et al. 2020), which draws digits that look far more like digits.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

Kind = Literal["seed", "compact", "rd", "vae"]
Loss = Literal["bce", "mse", "l1", "psnr"]
Latent = Literal["vector", "spatial", "positional"]
KINDS: tuple[str, ...] = ("seed", "compact", "rd", "vae")
LOSSES: tuple[str, ...] = ("bce", "mse", "l1", "psnr")
LATENTS: tuple[str, ...] = ("vector", "spatial", "positional")
# Fields added after weights were shipped: to_json leaves them out at these defaults, so the configs
# of older weights (and the pair fingerprints hashed over them) keep their exact JSON.
LATER_FIELDS = {"lmbda": 0.0, "latent": "vector", "blocks": 0, "beta": 0.0, "prior_components": 0}


@dataclass(frozen=True)
class ModelConfig:
    name: str
    kind: Kind = "compact"
    code_size: int | None = 32  # compact and rd: numbers (vector) or channels (spatial); not the seed
    widths: tuple[int, ...] = (32, 64, 128)  # channels per encoder stage; depth = len(widths)
    loss: Loss = "bce"  # "psnr": the mean over images of ln(per-image MSE), i.e. mean per-image PSNR
    noise: float = 0.0  # sigma of the Gaussian noise added to inputs while training (denoising)
    image_size: int = 28
    channels: int = 1
    lmbda: float = 0.0  # rd only: the loss is distortion + lmbda * bits, both per image
    latent: Latent = "vector"  # rd only: "vector" (code_size numbers) or a map of code_size channels
    blocks: int = 0  # compact and rd: residual blocks after each encoder stage, mirrored in the decoder
    beta: float | None = None  # vae only: loss = reconstruction + beta * KL, per image; None: 1 for a vae
    # vae only: 0 samples from N(0, I); K > 0 from a K-component full-covariance Gaussian mixture over the
    # flattened latent, fitted after training and held by the decoder half (shared.codec.mixture)
    prior_components: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False)  # free-form notes

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "lmbda", float(self.lmbda))
        if self.beta is None:  # a vae is a true VAE unless told otherwise; the other kinds have no KL term
            object.__setattr__(self, "beta", 1.0 if self.kind == "vae" else 0.0)
        object.__setattr__(self, "beta", float(self.beta))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.latent not in LATENTS:
            raise ValueError(f"latent must be one of {LATENTS}, not {self.latent!r}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be one or more positive ints, not {self.widths!r}")
        if self.kind != "seed" and (self.code_size is None or self.code_size < 1):
            raise ValueError(f"a {self.kind} model needs code_size >= 1")
        if self.kind == "rd" and not (self.lmbda > 0 and math.isfinite(self.lmbda)):
            raise ValueError("an rd model needs lmbda > 0: the weight of bits against distortion")
        if self.kind != "rd" and (self.lmbda or self.latent != "vector"):
            raise ValueError("lmbda and latent are settings of rd models only")
        if self.kind == "vae" and not (self.beta > 0 and math.isfinite(self.beta)):
            raise ValueError("a vae model needs beta > 0: the weight of the KL term")
        if self.kind != "vae" and self.beta:
            raise ValueError("beta is a setting of vae models only")
        if isinstance(self.prior_components, bool) or not isinstance(self.prior_components, int) \
                or self.prior_components < 0:
            raise ValueError(f"prior_components must be an int >= 0, not {self.prior_components!r}")
        if self.prior_components and self.kind != "vae":
            raise ValueError("prior_components is a setting of vae models only")
        if self.kind == "vae" and self.loss == "psnr":
            raise ValueError("a vae's reconstruction term is a likelihood per pixel: loss bce, mse or l1")
        if self.kind == "seed":
            object.__setattr__(self, "code_size", None)
            if self.image_size % (2 ** self.depth):
                raise ValueError(f"seed: image_size {self.image_size} must divide by 2**depth")
        if self.blocks < 0 or (self.blocks and self.kind == "seed"):
            raise ValueError("blocks must be >= 0, and the seed keeps the spec's layers (blocks 0)")
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
        """Shape of one latent code: (code_size,), (code_size, H, W) for an rd map, the seed's feature map."""
        if self.kind == "seed":
            return self.feature_shape
        if self.latent == "vector":
            return (self.code_size,)
        return (self.code_size, *self.feature_shape[1:])

    @property
    def prior_channels(self) -> int:
        """Densities of an rd model's prior: one per channel of a spatial map, else one per number."""
        return self.code_size if self.latent == "spatial" else self.code_numel

    @property
    def table_support(self) -> int:
        """Symbols in each of an rd model's coding tables (a shape of its buffers); values beyond are
        escaped. 128 when every value has its own table: 784 tables of 512 would be 1.6 MB in each half,
        and the widest measured held 101 symbols."""
        return 512 if self.prior_channels <= 64 else 128

    @property
    def entropy_coded(self) -> bool:
        """Codes are quantized and entropy coded with tables both halves hold (rd models)."""
        return self.kind == "rd"

    @property
    def has_prior(self) -> bool:
        """New latents can be drawn from a prior and decoded (vae models): N(0, I), and for
        prior_components > 0 also the fitted mixture the decoder half holds."""
        return self.kind == "vae"

    @property
    def code_numel(self) -> int:
        return math.prod(self.code_shape)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def to_json(self) -> str:
        d = asdict(self)
        d["widths"] = list(self.widths)
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
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
        # Entropy-coded operating points (issue 4): <= 10 B at >= 20 dB, <= 16 B at >= 24 dB, <= 64 B at
        # >= 29 dB. lmbda sets where each lands (see the README's rd section).
        # rd10 at lmbda 0.07 gave 8.5 B but lost 1.56 points of the judge's accuracy (issue 11: <= 1.5);
        # 0.05 spends 0.7 B more on the digit's identity (30 epochs, cosine).
        ModelConfig("rd10", kind="rd", code_size=16, widths=(32, 64, 128), loss="mse", lmbda=0.05),
        ModelConfig("rd16", kind="rd", code_size=32, widths=(32, 64, 128), loss="mse", lmbda=0.025),
        # rd64: a residual block per stage and the psnr loss took the 7x7x16 positional map from 50.1 B
        # at 31.1 dB (MSE, no blocks, lmbda 0.002, 40 epochs) to the card's figures (30 epochs).
        ModelConfig("rd64", kind="rd", code_size=16, widths=(32, 64), blocks=1, loss="psnr", lmbda=1.4,
                    latent="positional"),
        # A VAE with a 16-number latent: BCE summed per image + KL (beta 1), the usual VAE objective.
        ModelConfig("vae16", kind="vae", code_size=16, widths=(32, 64, 128), loss="bce", beta=1.0),
        # beta 0.1: at beta 1 the KL cost holds the code to ~24 nats and the judge's accuracy on the
        # reconstructions drops 2.6 points, beyond issue 11's 1.5. The mixture prior: digits drawn from a
        # VAE's N(0, I) are judged confidently only ~40% of the time (vae16), the issue asks 90%; a
        # 50-component mixture fitted to vae16's training codes gave 91.9%, with balanced classes.
        # 100 components, not 50: over four seeds of 1,000 draws from the trained vae32, 50 gave 88.7-91.8%
        # confident, 100 gave 92.2-92.6%.
        ModelConfig("vae32", kind="vae", code_size=32, widths=(32, 64, 128), loss="bce", beta=0.1,
                    prior_components=100),
    )
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None

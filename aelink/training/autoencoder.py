"""Encoder and decoder joined for training and evaluation. Services never import this module.

Entropy-coded (rd) models also own the learned prior here, which only training needs: the latent passes
through it (uniform noise while training, rounding at eval) and its likelihoods give the rate. At
export, `export_state` turns the prior into integer tables in both halves and leaves its parameters out.

Variational (vae) models draw their latent from the encoder's posterior while training (the
reparameterization trick) and pay its KL divergence from N(0, I); at eval the latent is the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelink.training import fused
from aelink.training.prior import FactorizedPrior, build_tables, rate_bits
from shared.codec.config import ModelConfig
from shared.codec.decoder import Decoder
from shared.codec.encoder import Encoder
from shared.codec.layers import TapSumConv2d

PRIOR = "prior"  # the state-dict prefix of the prior's parameters: training only, in neither half


class Autoencoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if config.entropy_coded:
            self.prior = FactorizedPrior(config.prior_channels)  # per channel, or per value (see config)
        self.fused = self.fused_head = self.fused_tail = False  # training's faster paths (use_fused)

    def use_fused(self, on: bool = True) -> bool:
        """Let training steps take the faster paths of aelink/training/fused where the model has their
        layers: the fused kernels (built on first use; skipped where they cannot be) and, under bf16
        autocast, ConvTransposes whose weight gradient is fp32. Returns whether they are on (False with
        AELINK_FUSED=0). Evaluation and no-grad calls always run the modules as they are."""
        enc, dec = self.encoder.features, self.decoder.net
        conv, pool = enc[0], enc[1]
        head = (self.config.kind == "seed" and isinstance(conv, nn.Conv2d) and conv.in_channels == 1
                and conv.out_channels == fused.CHANNELS and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                and conv.stride == (1, 1) and isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2
                and pool.stride == 2 and pool.padding == 0 and not pool.ceil_mode)
        tail = (isinstance(dec[-2], nn.ReLU) and isinstance(dec[-1], TapSumConv2d)
                and dec[-1].in_channels == fused.CHANNELS and dec[-1].out_channels == 1)
        self.fused = bool(on and fused.enabled())
        built = self.fused and (head or tail) and fused.kernels() is not None
        self.fused_head, self.fused_tail = head and built, tail and built  # the kernels' layers, where built
        return self.fused

    def fusing(self) -> bool:
        return self.fused and self.training and torch.is_grad_enabled()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output (the seed's through the fused first conv and pooling while training)."""
        if not (self.fusing() and self.fused_head):
            return self.encoder(x)
        first, _pool, *rest = self.encoder.features
        z = fused.ConvPool.apply(x, first.weight, first.bias)
        for layer in rest:
            z = layer(z)
        return self.encoder.bottleneck(z)  # the seed's is the identity

    def decode_logits(self, y: torch.Tensor) -> torch.Tensor:
        """The decoder's logits (while training: ConvTransposes with an fp32 weight gradient under bf16
        autocast, and the fused backward of the last ReLU and conv)."""
        if not self.fusing():
            return self.decoder.logits(y)
        *body, relu, last = self.decoder.net
        bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        z = self.decoder.grid(y)
        for layer in body:
            if bf16 and isinstance(layer, nn.ConvTranspose2d):
                z = fused.BF16Deconv.apply(z, layer.weight, layer.bias, layer)
            else:
                z = layer(z)
        if self.fused_tail:
            return fused.ReluTap.apply(z, last.weight, last.bias, last)
        return last(relu(z))

    def latents(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The latent the decoder gets, and its likelihoods (rd; None otherwise)."""
        y = self.encode(x)  # (N, *code_shape)
        if not self.config.entropy_coded:
            return y, None
        return self.quantize(y, generator)

    def quantize(self, y: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents (N, *code_shape) through the prior, with uniform noise while training (from
        `generator`, default the global one) and rounded at eval exactly as decompress(compress(y)) gives
        them; and their likelihoods, the same shape."""
        y_tilde, likelihoods = self.prior(y.reshape(len(y), self.config.prior_channels, -1), generator)
        return y_tilde.reshape(y.shape), likelihoods.reshape(y.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latents(x)[0])  # (N,1,28,28) -> (N,1,28,28)

    def terms(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
              ) -> dict[str, torch.Tensor]:
        """The training objective and its parts: 'loss', 'distortion' (mean per-pixel loss), 'logits',
        for rd models 'bits' (per image, from the prior's likelihoods), for vae models 'kl' (nats per image).
        Training noise (rd, vae) comes from `generator`, default the global one."""
        if self.config.kind == "vae":
            return self.vae_terms(x, target, generator)
        y, likelihoods = self.latents(x, generator)
        logits = self.decode_logits(y)
        distortion = reconstruction_loss(logits, target, self.config.loss)
        out = {"loss": distortion, "distortion": distortion, "logits": logits}
        if likelihoods is not None:
            bits = rate_bits(likelihoods) / len(x)
            # distortion + lmbda * bits, both per image, divided by the pixels of an image: the same
            # optimum, and a loss on the same scale as the other kinds'.
            out["bits"] = bits
            out["loss"] = distortion + self.config.lmbda * bits / target[0].numel()
        return out

    def vae_terms(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
                  ) -> dict[str, torch.Tensor]:
        mean, logvar = self.encoder.moments(x)
        # a draw from the posterior while training (its noise from `generator`, default the global one,
        # which checkpoints keep); the mean at eval, as the sender sends it
        if self.training:  # empty_like + normal_ is randn_like, with a generator
            y = mean + torch.empty_like(mean).normal_(generator=generator) * (0.5 * logvar).exp()
        else:
            y = mean
        logits = self.decode_logits(y)
        distortion = reconstruction_loss(logits, target, self.config.loss)
        kl = kl_divergence(mean, logvar).mean()
        # reconstruction + beta * KL, both per image (BCE summed over the pixels is the usual VAE
        # objective), divided by the pixels of an image as for rd models: the same optimum and scale.
        loss = distortion + self.config.beta * kl / target[0].numel()
        return {"loss": loss, "distortion": distortion, "logits": logits, "kl": kl}

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of reconstructing `target` from input `x` (noisy when denoising)."""
        return self.terms(x, target)["loss"]

    @torch.no_grad()
    def build_tables(self) -> None:
        """Fill both halves' entropy tables from the prior as it is now (rd models)."""
        tables = build_tables(self.prior, max_support=self.config.table_support)
        self.encoder.entropy.load_tables(tables)
        self.decoder.entropy.load_tables(tables)

    def export_state(self) -> dict[str, torch.Tensor]:
        """The state both halves are saved from: tables built, the prior's parameters left out."""
        if self.config.entropy_coded:
            self.build_tables()
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()
                if k.partition(".")[0] != PRIOR}


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "bce":  # on logits: stable where the sigmoid saturates
        return F.binary_cross_entropy_with_logits(logits, target)
    recon = torch.sigmoid(logits)
    if kind == "mse":
        return F.mse_loss(recon, target)
    if kind == "l1":
        return F.l1_loss(recon, target)
    if kind == "psnr":  # mean PSNR is judged per image: easy digits' dB count as much as hard ones'
        per_image = (recon - target).pow(2).flatten(1).mean(1)  # (N,)
        return per_image.clamp_min(1e-10).log().mean()
    raise ValueError(f"unknown loss {kind!r}")


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) in nats, per row: (N, D) -> (N,)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

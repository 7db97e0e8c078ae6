"""Evaluation on the test set: BCE, MSE, PSNR (two ways, labelled), SSIM and code size, with a PCA
baseline at the same code size. With noise, inputs are noisy and targets clean."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from shared.data import add_noise
from shared.decoder import load_decoder
from shared.encoder import load_encoder

FLOAT_BYTES = 4  # codes travel as float32
MAX_PSNR = 100.0  # a perfect image would be infinite dB; cap it so means stay finite


@dataclass
class Row:
    method: str
    code_bytes: int | None
    bce: float
    mse: float
    psnr_mean_per_image: float  # mean over images of each image's PSNR
    psnr_of_mean_mse: float  # PSNR of the MSE averaged over all pixels of all images
    ssim: float

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def score(method: str, recon: torch.Tensor, target: torch.Tensor, code_bytes: int | None) -> Row:
    """Metrics of reconstructions (N,1,28,28) against targets, both in [0,1]."""
    recon = recon.clamp(0.0, 1.0).float()
    per_image_mse = ((recon - target) ** 2).flatten(1).mean(1)  # (N,)
    psnr = 10 * torch.log10(1.0 / per_image_mse.clamp_min(10 ** (-MAX_PSNR / 10)))
    mse = per_image_mse.mean().item()
    eps = 1e-7  # BCE of a hard 0/1 pixel is infinite: clamp as Keras does
    bce = F.binary_cross_entropy(recon.clamp(eps, 1 - eps), target).item()
    s = ssim(recon, target, data_range=1.0, size_average=False)  # (N,), 11x11 Gaussian window
    psnr_of_mean = min(MAX_PSNR, 10 * np.log10(1.0 / max(mse, 1e-30)))
    return Row(method, code_bytes, bce, mse, psnr.mean().item(), psnr_of_mean, s.mean().item())


def load_pair(weights_dir: str | Path):
    """Both halves from weights_dir, checked to be one pair: (encoder, decoder, HalfWeights)."""
    encoder, enc_meta = load_encoder(Path(weights_dir) / "encoder.safetensors")
    decoder, dec_meta = load_decoder(Path(weights_dir) / "decoder.safetensors")
    if enc_meta.fingerprint != dec_meta.fingerprint:
        raise ValueError(
            f"{weights_dir}: encoder {enc_meta.fingerprint} and decoder {dec_meta.fingerprint} are not a pair"
        )
    return encoder, decoder, enc_meta


@torch.no_grad()
def reconstruct(encoder, decoder, inputs: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Encode and decode through the two halves, as sender and receiver would."""
    return torch.cat([decoder(encoder(x)) for x in inputs.split(batch)])


class PCA:
    """PCA fitted on training images; codes are the top-k component scores."""

    def __init__(self, train: torch.Tensor, k: int) -> None:
        x = train.flatten(1).double()  # (N, 784)
        self.mean = x.mean(0)
        cov = (x - self.mean).T @ (x - self.mean) / (len(x) - 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        self.components = vecs[:, -k:].flip(1)  # (784, k), largest first
        self.k = k

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1).double() - self.mean
        recon = (flat @ self.components) @ self.components.T + self.mean
        return recon.float().reshape(x.shape).clamp(0.0, 1.0)


def evaluate(weights_dir: str | Path, train: torch.Tensor, test: torch.Tensor,
             noise: float | None = None, seed: int = 0) -> tuple[list[Row], dict]:
    """Rows for the model, the PCA baseline at the same code size, and (with noise) the noisy inputs."""
    encoder, decoder, meta = load_pair(weights_dir)
    config = meta.config
    sigma = config.noise if noise is None else noise
    inputs = add_noise(test, sigma, torch.Generator().manual_seed(seed)) if sigma else test
    recon = reconstruct(encoder, decoder, inputs)
    code_bytes = config.code_numel * FLOAT_BYTES
    rows = [score(config.name, recon, test, code_bytes)]
    k = min(config.code_numel, test[0].numel())
    rows.append(score(f"pca{k}", PCA(train, k).reconstruct(inputs), test, k * FLOAT_BYTES))
    if sigma:
        rows.append(score(f"noisy input (sigma {sigma})", inputs, test, None))
    info = {"model": config.name, "config": config.to_json(), "noise": sigma, "images": len(test)}
    return rows, info


def format_table(rows: list[Row]) -> str:
    head = f"{'method':<24} {'bytes':>6} {'BCE':>8} {'MSE':>9} {'PSNR/img':>9} {'PSNR(mse)':>9} {'SSIM':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        size = "-" if r.code_bytes is None else str(r.code_bytes)
        lines.append(f"{r.method:<24} {size:>6} {r.bce:>8.4f} {r.mse:>9.5f} {r.psnr_mean_per_image:>9.2f}"
                     f" {r.psnr_of_mean_mse:>9.2f} {r.ssim:>7.4f}")
    lines.append("PSNR/img: mean of per-image PSNR (dB); PSNR(mse): PSNR of the mean MSE (dB); pixels in [0,1]")
    return "\n".join(lines)

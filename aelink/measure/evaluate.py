"""Evaluation on the test set: BCE, MSE, PSNR (two ways, labelled), SSIM and code size, with a PCA
baseline at the same code size. With noise, inputs are noisy and targets clean.

Entropy-coded (rd) models go through their real codes: the bytes are the mean length of each image's
own code plus its varint length, as on the wire; the PCA baseline gets as many float32 bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from aelink.data.datasets import add_noise
from shared.codec.decoder import load_decoder
from shared.codec.encoder import load_encoder
from shared.codec.wire import wire_bytes

FLOAT_BYTES = 4  # codes travel as float32
MAX_PSNR = 100.0  # a perfect image would be infinite dB; cap it so means stay finite


@dataclass
class Row:
    method: str
    code_bytes: float | None  # per image; the mean for variable-length codes
    bce: float
    mse: float
    psnr_mean_per_image: float  # mean over images of each image's PSNR
    psnr_of_mean_mse: float  # PSNR of the MSE averaged over all pixels of all images
    ssim: float
    # the judge (aelink.judge), when given: its accuracy on these images (%), how often it gives them
    # their original's class (%), and whether the drop from the originals' accuracy meets issue 11's target
    accuracy: float | None = None
    agreement: float | None = None
    accuracy_drop: float | None = None
    allowed_drop: float | None = None
    meets_target: bool | None = None

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
def transmit(encoder, decoder, inputs: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, list[bytes]]:
    """Encode and decode through the two halves, as sender and receiver would: (reconstructions, codes).
    Entropy-coded models go through their real codes; the others pass float latents (and no codes)."""
    recons, codes = [], []
    for x in inputs.split(batch):
        z = encoder(x)
        if encoder.config.entropy_coded:
            batch_codes = encoder.entropy.compress(z)
            codes += batch_codes
            z = decoder.decompress(batch_codes)
        recons.append(decoder(z))
    return torch.cat(recons), codes


def reconstruct(encoder, decoder, inputs: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return transmit(encoder, decoder, inputs, batch)[0]


class PCA:
    """PCA fitted on training images; codes are the top-k component scores."""

    def __init__(self, train: torch.Tensor, k: int) -> None:
        x = train.flatten(1).double()  # (N, 784)
        self.mean = x.mean(0)
        cov = (x - self.mean).T @ (x - self.mean) / (len(x) - 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        self.components = vecs[:, -k:].flip(1)  # (784, k), largest first
        self.k = k

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) -> their k component scores (N, k), float64."""
        return (x.flatten(1).double() - self.mean) @ self.components

    def decode(self, scores: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Scores (N, k) -> images of `shape` in [0, 1]."""
        recon = scores.double() @ self.components.T + self.mean
        return recon.float().reshape(shape).clamp(0.0, 1.0)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape)


def model_dirs(root: Path) -> list[Path]:
    """The model folders under root: those holding an encoder half."""
    return sorted(p for p in root.iterdir() if (p / "encoder.safetensors").is_file())


def evaluate(weights_dir: str | Path, train: torch.Tensor, test: torch.Tensor,
             noise: float | None = None, seed: int = 0, judge=None) -> tuple[list[Row], dict]:
    """Rows for the model, the PCA baseline at the same code size, and (with noise) the noisy inputs;
    with a judge (aelink.judge.score.Judge of these test images), its verdicts in each row."""
    return evaluate_pair(*load_pair(weights_dir), train, test, noise, seed, judge)


def judged(row: Row, recon: torch.Tensor, judge) -> Row:
    """The row with the judge's verdicts on its reconstructions filled in (unchanged without a judge)."""
    if judge is not None:
        for key, value in judge.identity(recon, row.psnr_mean_per_image).items():
            setattr(row, key, value)
    return row


def evaluate_pair(encoder, decoder, meta, train: torch.Tensor, test: torch.Tensor,
                  noise: float | None = None, seed: int = 0, judge=None) -> tuple[list[Row], dict]:
    """`evaluate` for halves already loaded by `load_pair`."""
    config = meta.config
    sigma = config.noise if noise is None else noise
    inputs = add_noise(test, sigma, torch.Generator().manual_seed(seed)) if sigma else test
    recon, codes = transmit(encoder, decoder, inputs)
    code_bytes = float(np.mean(wire_bytes(codes))) if codes else config.code_numel * FLOAT_BYTES
    rows = [judged(score(config.name, recon, test, code_bytes), recon, judge)]
    k = max(1, min(round(code_bytes / FLOAT_BYTES), test[0].numel()))
    pca = PCA(train, k).reconstruct(inputs)
    rows.append(judged(score(f"pca{k}", pca, test, k * FLOAT_BYTES), pca, judge))
    if sigma:
        rows.append(judged(score(f"noisy input (sigma {sigma})", inputs, test, None), inputs, judge))
    info = {"model": config.name, "config": config.to_json(), "noise": sigma, "images": len(test)}
    if judge is not None:
        info["judge"] = judge.summary()
    return rows, info


def format_bytes(code_bytes: float | None) -> str:
    """Whole bytes as they are; a mean (variable-length codes) to a tenth."""
    return "-" if code_bytes is None else f"{code_bytes:.1f}" if code_bytes % 1 else f"{code_bytes:.0f}"


def format_table(rows: list[Row]) -> str:
    with_judge = any(r.accuracy is not None for r in rows)
    head = f"{'method':<24} {'bytes':>6} {'BCE':>8} {'MSE':>9} {'PSNR/img':>9} {'PSNR(mse)':>9} {'SSIM':>7}"
    head += f" {'acc%':>6} {'agree%':>6} {'target':>10}" if with_judge else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        size = format_bytes(r.code_bytes)
        line = (f"{r.method:<24} {size:>6} {r.bce:>8.4f} {r.mse:>9.5f} {r.psnr_mean_per_image:>9.2f}"
                f" {r.psnr_of_mean_mse:>9.2f} {r.ssim:>7.4f}")
        if with_judge:
            verdict = f"{'met' if r.meets_target else 'MISSED'} <={r.allowed_drop:g}"
            line += f" {r.accuracy:>6.2f} {r.agreement:>6.2f} {verdict:>10}"
        lines.append(line)
    lines.append("PSNR/img: mean of per-image PSNR (dB); PSNR(mse): PSNR of the mean MSE (dB); pixels in [0,1]")
    if with_judge:
        lines.append("acc%: the judge's accuracy on the reconstructions; agree%: reconstructions given their"
                     " original's class; target: the drop in accuracy from the originals allowed (points)")
    return "\n".join(lines)

"""`aelink bench rd`: bytes per image against PSNR and SSIM on the MNIST test images, all measured in one run.

Every point is a mean over the same test images, scored by `aelink.measure.evaluate.score` (PSNR is the mean of
per-image PSNR, capped at 100 dB for a perfect image):

- our entropy-coded (rd) models: the real length of each image's own code plus its varint length, as
  on the wire, beside the information the prior's integer tables give it (bits / 8): any gap shows;
- our compact models with fixed-length codes, float32 (4 bytes a value) and 8-bit (wire format u8);
- PCA fitted on the training images at the compact models' code sizes, float32 and 8-bit;
- Pillow, each image its own 28x28 grayscale file, its real size, each codec at its best compression:
  PNG (optimize), WebP lossless and lossy at several qualities (method 6), JPEG at several qualities
  (optimized Huffman tables). These settings reproduce the issue's reference sizes.

With the judge (a digit classifier, aelink.judge), every point also gets its accuracy on the decoded
images and its agreement with the originals' classes, and the plot a third panel: bytes against accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aelink.measure.evaluate import PCA, load_pair, model_dirs, score, transmit
from shared.codec import wire

WEBP_QUALITIES = (1, 5, 10, 20, 30, 50, 70, 90)
JPEG_QUALITIES = (5, 10, 20, 30, 50, 70, 90)
TARGETS = ((10, 20.0), (16, 24.0), (64, 29.0))  # issue 4: at most so many bytes at so many dB or more
XLIM = (4, 800)  # bytes per image on the plot


@dataclass
class Point:
    family: str  # a series of the plot: "rd", "compact f32", "PCA u8", "WebP lossy", ...
    method: str  # the point within it: a model name, "q10", "k32"
    bytes: float  # mean real bytes per image
    psnr: float  # mean of per-image PSNR (dB)
    ssim: float
    estimate_bytes: float | None = None  # rd: the information under the prior's tables, / 8
    accuracy: float | None = None  # the judge's, on the decoded images (%)
    agreement: float | None = None  # decoded images given their original's class by the judge (%)

    def as_dict(self) -> dict:
        return asdict(self)


def scored(family: str, method: str, recon: torch.Tensor, target: torch.Tensor, sizes, estimate=None,
           judge=None) -> Point:
    row = score(method, recon, target, None)
    point = Point(family, method, float(np.mean(sizes)), row.psnr_mean_per_image, row.ssim, estimate)
    if judge is not None:
        verdict = judge.identity(recon, row.psnr_mean_per_image)
        point.accuracy, point.agreement = verdict["accuracy"], verdict["agreement"]
    return point


# --- Pillow ------------------------------------------------------------------------------------------


def pillow_round_trip(images: np.ndarray, fmt: str, **params) -> tuple[torch.Tensor, list[int]]:
    """uint8 images (N,28,28), each saved as its own file -> (decoded (N,1,28,28) in [0,1], file sizes)."""
    decoded, sizes = [], []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format=fmt, **params)
        sizes.append(buf.tell())
        decoded.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")))
    return torch.from_numpy(np.stack(decoded).astype(np.float32) / 255.0)[:, None], sizes


def pillow_points(images: np.ndarray, target: torch.Tensor, judge=None) -> list[Point]:
    runs = [("PNG", "optimize", "PNG", {"optimize": True}),
            ("WebP lossless", "lossless", "WEBP", {"lossless": True, "method": 6})]
    runs += [("WebP lossy", f"q{q}", "WEBP", {"quality": q, "method": 6}) for q in WEBP_QUALITIES]
    runs += [("JPEG", f"q{q}", "JPEG", {"quality": q, "optimize": True}) for q in JPEG_QUALITIES]
    points = []
    for family, method, fmt, params in runs:
        recon, sizes = pillow_round_trip(images, fmt, **params)
        points.append(scored(family, method, recon, target, sizes, judge=judge))
    return points


# --- our models and PCA ------------------------------------------------------------------------------


def u8_round_trip(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values (N, ...) through the wire's u8 format: (what the receiver gets, bytes per code)."""
    codes = wire.encode_codes(values, "0" * 16, "u8")
    return wire.decode_codes(codes), codes.code_length


@torch.no_grad()
def model_points(folder: Path, target: torch.Tensor, judge=None) -> list[Point]:
    encoder, decoder, meta = load_pair(folder)
    config = meta.config
    if config.entropy_coded:
        recon, codes = transmit(encoder, decoder, target)
        info = torch.cat([encoder.entropy.information_bits(encoder(x)) for x in target.split(1000)])
        return [scored("rd", config.name, recon, target, wire.wire_bytes(codes), info.mean().item() / 8,
                       judge=judge)]
    if config.kind not in ("compact", "vae") or config.noise:  # the seed's code is larger than the image: no
        return []  # codec; a denoiser is made for noisy inputs, its clean-input point would mislead
    latents = torch.cat([encoder(x) for x in target.split(1000)]).numpy()
    as_u8, u8_bytes = u8_round_trip(latents)
    f32 = torch.cat([decoder(z) for z in torch.from_numpy(latents).split(1000)])
    u8 = torch.cat([decoder(z) for z in torch.from_numpy(as_u8).split(1000)])
    return [scored(f"{config.kind} f32", config.name, f32, target, [4 * config.code_numel], judge=judge),
            scored(f"{config.kind} u8", config.name, u8, target, [u8_bytes], judge=judge)]


def pca_points(train: torch.Tensor, target: torch.Tensor, sizes: list[int], judge=None) -> list[Point]:
    points = []
    for k in sizes:
        pca = PCA(train, k)
        scores = pca.encode(target).float().numpy()  # (N, k)
        as_u8, u8_bytes = u8_round_trip(scores)
        for family, values, size in (("PCA f32", scores, 4 * k), ("PCA u8", as_u8, u8_bytes)):
            recon = pca.decode(torch.from_numpy(values), target.shape)
            points.append(scored(family, f"k{k}", recon, target, [size], judge=judge))
    return points


def model_folders(root: Path | None, extra: list[Path]) -> list[Path]:
    found = model_dirs(root) if root and root.is_dir() else []
    return found + [Path(p) for p in extra]


def bench_rd(train: torch.Tensor, test: torch.Tensor, folders: list[Path], pca_sizes: list[int],
             log=print, judge=None) -> list[Point]:
    """All the points, on test (N,1,28,28) in [0,1] (8-bit values, as MNIST's are); with a judge
    (aelink.judge.score.Judge of these test images), each point's accuracy and agreement too."""
    images = np.rint(test[:, 0].numpy() * 255).astype(np.uint8)
    points = []
    for folder in folders:
        log(f"model {folder}")
        points += model_points(folder, test, judge)
    log(f"PCA k = {', '.join(map(str, pca_sizes))}")
    points += pca_points(train, test, pca_sizes, judge)
    log("Pillow: PNG, WebP, JPEG")
    points += pillow_points(images, test, judge)
    return points


# --- output ------------------------------------------------------------------------------------------


def format_table(points: list[Point]) -> str:
    lines = [f"{'family':<14} {'method':<12} {'bytes':>7} {'estimate':>8} {'PSNR':>6} {'SSIM':>6} {'acc%':>6} {'agree%':>6}"]
    for p in points:
        est = "-" if p.estimate_bytes is None else f"{p.estimate_bytes:.1f}"
        judged = "" if p.accuracy is None else f" {p.accuracy:>6.2f} {p.agreement:>6.2f}"
        lines.append(f"{p.family:<14} {p.method:<12} {p.bytes:>7.1f} {est:>8} {p.psnr:>6.2f} {p.ssim:>6.3f}{judged}")
    return "\n".join(lines)


def write_outputs(points: list[Point], out: Path, images: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    fields = list(Point.__dataclass_fields__)
    with (out / "rd.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(p.as_dict() for p in points)
    (out / "rd.json").write_text(json.dumps({"images": images, "points": [p.as_dict() for p in points]},
                                            indent=1) + "\n")
    plot(points, out / "rd.png", images)
    return [out / "rd.csv", out / "rd.json", out / "rd.png"]


def plot(points: list[Point], path: Path, images: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = [("psnr", "PSNR (dB, mean per image)"), ("ssim", "SSIM")]
    if all(p.accuracy is not None for p in points):
        panels.append(("accuracy", "judge's accuracy on the decoded images (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2))
    families = list(dict.fromkeys(p.family for p in points))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for family in families:
            series = sorted((p for p in points if p.family == family), key=lambda p: p.bytes)
            if family in ("PNG", "WebP lossless"):  # lossless: a byte count, no distortion to plot
                ax.axvline(series[0].bytes, ls=":", color="grey")
                ax.annotate(f"{family} (lossless)", (series[0].bytes, 0.98), xycoords=("data", "axes fraction"),
                            rotation=90, fontsize=8, color="grey", ha="right", va="top")
                continue
            xs, ys = [p.bytes for p in series], [getattr(p, metric) for p in series]
            if family == "rd":
                ax.scatter(xs, ys, marker="*", s=160, zorder=3, color="crimson", label="ours, entropy coded")
                est = [p.estimate_bytes for p in series]
                ax.scatter(est, ys, marker="*", s=90, facecolors="none", edgecolors="crimson", zorder=3,
                           label="ours: prior's estimate")
                for p, x, y in zip(series, xs, ys, strict=True):
                    ax.annotate(p.method, (x, y), textcoords="offset points", xytext=(6, -10), fontsize=8)
            else:
                ax.plot(xs, ys, marker="o", ms=4, label=family)
        if metric == "psnr":  # a target's region: at most its bytes (left), at least its dB (up)
            for size, db in TARGETS:
                ax.plot([XLIM[0], size, size], [db, db, 100], color="green", lw=0.8, alpha=0.5)
                ax.scatter([size], [db], marker="s", color="green", s=25, zorder=3)
            ax.set_ylim(10, 42)
        if metric == "accuracy":  # the lossless files hold the originals: their accuracy is the ceiling
            lossless = next((p.accuracy for p in points if p.family == "PNG"), None)
            if lossless is not None:
                ax.axhline(lossless, ls=":", color="grey")
            ax.set_ylim(max(0.0, min(p.accuracy for p in points) - 1), 100)
        ax.set_xscale("log")
        ax.set_xlim(*XLIM)
        ax.set_xlabel("bytes per image (real file or code length)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"MNIST test images ({images:,}): bytes against quality; green: issue 4's targets"
                 " (each point must lie up and left of its square)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The model card: `aelink eval` figures of every shipped model, measured and written in one run."""

from __future__ import annotations

import json
import platform
import statistics
from datetime import date
from pathlib import Path

import torch

from aelink.judge.card import draw_figures, judge_confidence, judge_prior, render_drawings, render_judge
from aelink.measure.evaluate import evaluate_pair, format_bytes, load_pair, model_dirs, reconstruct
from aelink.training.autoencoder import count_parameters


def measure(root: Path, train: torch.Tensor, test: torch.Tensor, judge=None) -> list[dict]:
    """One entry per model folder; with a judge (aelink.judge.score.Judge of these test images), its
    verdicts in the rows, and for models with a prior its verdict on 1,000 drawn digits."""
    entries = []
    for folder in model_dirs(root):
        encoder, decoder, meta = load_pair(folder)
        config = meta.config
        rows, info = evaluate_pair(encoder, decoder, meta, train, test, judge=judge)
        history_file = folder / "history.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else []
        entries.append({
            "model": config.name, "folder": folder.name, "config": json.loads(config.to_json()),
            "fingerprint": meta.fingerprint,
            "parameters": {"encoder": count_parameters(encoder), "decoder": count_parameters(decoder)},
            "epochs": len(history),
            "median_epoch_seconds": statistics.median(r["seconds"] for r in history) if history else None,
            "noise": info["noise"], "images": info["images"], "rows": [r.as_dict() for r in rows],
            **({"judge": info["judge"]} if "judge" in info else {}),
            **({"samples": judge_prior(decoder, judge), "reconstructions_confident_share":
                judge_confidence(reconstruct(encoder, decoder, test), judge)}
               if judge is not None and config.has_prior else {}),
            **({"drawings": draw_figures(encoder, decoder, test, folder)} if config.has_prior else {}),
        })
    return entries


def render(entries: list[dict], dataset: str) -> str:
    out = [
        "# Model card: aelink shipped weights",
        "",
        f"Measured by `aelink card` on {date.today().isoformat()} ({platform.machine()}, torch "
        f"{torch.__version__}): every figure below comes from `aelink eval` on all "
        f"{entries[0]['images'] if entries else 0:,} {dataset} test images. Trained on the 60,000 training "
        "images with `aelink train` (Adam, lr 1e-3, batch 128, shuffled, seed 0, one CPU thread each): "
        "`seed` as our spec says (constant lr, BCE, 50 epochs); the others with `--lr-schedule cosine`.",
        "",
        "PSNR/img is the mean of per-image PSNR; PSNR(mse) is the PSNR of the mean MSE; pixels in [0,1]. "
        "Bytes are the size of one image's code as float32; for entropy-coded (rd) models, the mean real "
        "length of each image's own code plus its varint length, as on the wire. PCA rows use as many "
        "float32 bytes (at most 784 components), fitted on the training images.",
        "",
        "| model | loss | noise | epochs | s/epoch | params enc/dec | method | bytes | BCE | MSE "
        "| PSNR/img | PSNR(mse) | SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        c = e["config"]
        loss = f"{c['loss']} + {c['lmbda']:g} x bits" if c.get("lmbda") else c["loss"]  # rd: its rate term
        loss = f"{c['loss']} + {c['beta']:g} x KL" if c.get("beta") else loss  # vae: its KL term
        lead = [e["model"], loss, str(c["noise"] or "-"), str(e["epochs"]),
                f"{e['median_epoch_seconds']:.0f}" if e["median_epoch_seconds"] else "-",
                f"{e['parameters']['encoder']:,} / {e['parameters']['decoder']:,}"]
        for i, r in enumerate(e["rows"]):
            cells = (lead if i == 0 else [""] * len(lead)) + [
                r["method"], format_bytes(r["code_bytes"]),
                f"{r['bce']:.4f}", f"{r['mse']:.5f}", f"{r['psnr_mean_per_image']:.2f}",
                f"{r['psnr_of_mean_mse']:.2f}", f"{r['ssim']:.4f}"]
            out.append("| " + " | ".join(cells) + " |")
    out += render_judge(entries)
    out += render_drawings(entries)
    out += ["", "Pair fingerprints (the encoder and decoder halves of each model share one):", ""]
    out += [f"- `{e['model']}`: `{e['fingerprint']}`" for e in entries]
    out += ["", "Figures (originals over reconstructions; clean, noisy, denoised for denoising models):", ""]
    out += [f"- `{e['model']}`: ![{e['model']}]({e['folder']}/figure.png)" for e in entries]
    out += ["", "s/epoch is the median over the run's epochs while other trainings shared the machine "
            "(2 cores); `aelink bench speed` measures the training step alone.", ""]
    return "\n".join(out)

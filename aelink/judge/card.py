"""The model card's judge sections: digit identity through each codec, and a vae's drawn digits."""

from __future__ import annotations

import torch

from aelink.judge.score import (
    CLASS_SHARE,
    CONFIDENCE,
    CONFIDENT_SHARE,
    MAX_DROP,
    MAX_DROP_SHARP,
    SAMPLE_SEED,
    SAMPLES,
    SHARP_DB,
)
from shared.codec.latent import sample_prior

TEMPERATURES = (1.0, 0.8)  # the target is judged at 1 (the prior itself); 0.8 shown beside it


@torch.no_grad()
def judge_prior(decoder, judge) -> list[dict]:
    """The judge's verdict on 1,000 digits drawn from the decoder's prior (seed 0), per temperature."""
    out = []
    for t in TEMPERATURES:
        latents = torch.from_numpy(sample_prior(decoder.config, SAMPLES, SAMPLE_SEED, t))
        out.append({"temperature": t, "seed": SAMPLE_SEED, **judge.samples(decoder(latents))})
    return out


def judge_confidence(images: torch.Tensor, judge) -> float:
    """Percent of images the judge gives a class with probability >= CONFIDENCE."""
    return (judge.classifier.probabilities(images).max(1).values >= CONFIDENCE).float().mean().item() * 100


def render_judge(entries: list[dict]) -> list[str]:
    judged = [e for e in entries if "judge" in e]
    if not judged:
        return []
    j = judged[0]["judge"]
    recorded = j.get("recorded_test_accuracy")
    out = [
        "", "## Digit identity: the judge", "",
        "The judge is a LeNet-sized CNN (`classifier/classifier.safetensors`, trained with `aelink classifier "
        f"train`): {j['original_accuracy']:.2f}% on the {j['images']:,} test originals"
        + (f" ({recorded:.2f}% recorded when it was trained)" if recorded is not None else "") + ". "
        "For each model: the judge's accuracy on the reconstructions, its drop from the originals' accuracy, "
        "and agreement, how often a reconstruction gets its original's class. Target (issue 11): a drop of "
        f"at most {MAX_DROP:g} points, at most {MAX_DROP_SHARP:g} from rd16's operating point up "
        f"({SHARP_DB:g} dB mean per-image PSNR or more).", "",
        "| model | PSNR/img | accuracy | drop (points) | allowed | agreement | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in judged:
        r = e["rows"][0]
        out.append(f"| {e['model']} | {r['psnr_mean_per_image']:.2f} | {r['accuracy']:.2f}% | {r['accuracy_drop']:.2f}"
                   f" | {r['allowed_drop']:g} | {r['agreement']:.2f}% | {'met' if r['meets_target'] else '**missed**'} |")
    missed = [e["model"] for e in judged if not e["rows"][0]["meets_target"]]
    out += ["", f"Missed: {', '.join(missed)}." if missed else "Every model meets its target."]
    drawn = [e for e in entries if e.get("samples")]
    if drawn:
        lo, hi = CLASS_SHARE
        out += ["", "### Drawn digits", "",
                f"{SAMPLES:,} digits drawn from each vae's prior N(0, I) (seed {SAMPLE_SEED}, its std scaled by the "
                f"temperature), judged. Target (issue 11), at temperature 1: at least {CONFIDENT_SHARE:g}% judged "
                f"with confidence >= {CONFIDENCE:g}, and every class between {lo:g}% and {hi:g}% of them. For scale: "
                f"the judge is that confident of {j['original_confident_share']:.1f}% of the real test digits"
                + "".join(f", of {e['reconstructions_confident_share']:.1f}% of {e['model']}'s reconstructions of them"
                          for e in drawn if "reconstructions_confident_share" in e)
                + " (drawn digits can hardly do better than a model's own reconstructions).", "",
                "| model | temperature | confident | class shares (0..9, %) | target |", "|---|---|---|---|---|"]
        for e in drawn:
            for s in e["samples"]:
                shares = " ".join(f"{x:.1f}" for x in s["class_shares"])
                verdict = ("met" if s["meets_target"] else "**missed**") if s["temperature"] == 1.0 else "-"
                out.append(f"| {e['model']} | {s['temperature']:g} | {s['confident_share']:.1f}% | {shares} | {verdict} |")
    return out

"""The model card's judge sections: digit identity through each codec, and a vae's drawn digits (from its
fitted prior if it has one, with N(0, I) beside it)."""

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
from shared.codec.latent import choose_prior, sample_prior

TEMPERATURES = (1.0, 0.8)  # the target is judged at 1 (the prior itself); 0.8 shown beside it


def draws(decoder) -> list[tuple[str, float, bool]]:
    """(prior, temperature, is the target) of each row: the model's default prior (its fitted one if it
    has one) at each temperature, the target at 1; beside a fitted prior, N(0, I) at 1 for comparison."""
    default, _ = choose_prior(decoder, None)
    rows = [(default, t, t == 1.0) for t in TEMPERATURES]
    return rows + [("standard", 1.0, False)] if default == "fitted" else rows


@torch.no_grad()
def draw_figures(encoder, decoder, test: torch.Tensor, folder) -> dict[str, str]:
    """The card's drawings of a model with a prior, written into its folder: `samples.png`, 64 digits from
    its default prior (seed 0, temperature 1), and `interpolation.png`, 10 steps from test digit 0 to 1."""
    from aelink.draw import save_grid
    from aelink.figure import to_uint8
    from shared.codec.latent import interpolate

    prior, mixture = choose_prior(decoder, None)
    latents = torch.from_numpy(sample_prior(decoder.config, 64, SAMPLE_SEED, 1.0, mixture))
    save_grid(to_uint8(decoder(latents)), 8, folder / "samples.png")
    ends = encoder(test[:2]).numpy()
    save_grid(to_uint8(decoder(torch.from_numpy(interpolate(ends[0], ends[1], 10)))), 10,
              folder / "interpolation.png")
    return {"samples": f"{folder.name}/samples.png", "interpolation": f"{folder.name}/interpolation.png",
            "prior": prior}


def render_drawings(entries: list[dict]) -> list[str]:
    drawn = [e for e in entries if "drawings" in e]
    if not drawn:
        return []
    out = ["", "Drawn by the decoders alone (64 digits from each vae's default prior, seed 0, temperature 1;"
           " then 10 steps on the line between the codes of test digits 0 and 1):", ""]
    for e in drawn:
        d = e["drawings"]
        out += [f"- `{e['model']}` ({d['prior']} prior): ![{e['model']} samples]({d['samples']})"
                f" ![{e['model']} interpolation]({d['interpolation']})"]
    return out


@torch.no_grad()
def judge_prior(decoder, judge) -> list[dict]:
    """The judge's verdict on 1,000 digits drawn from the decoder's priors (seed 0), per row of draws()."""
    out = []
    for prior, t, target in draws(decoder):
        mixture = choose_prior(decoder, prior)[1]
        latents = torch.from_numpy(sample_prior(decoder.config, SAMPLES, SAMPLE_SEED, t, mixture))
        out.append({"prior": prior, "temperature": t, "seed": SAMPLE_SEED, "target": target,
                    **judge.samples(decoder(latents))})
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
        out += render_drawn(drawn, j)
    return out


def prior_name(entry: dict, prior: str) -> str:
    k = entry["config"].get("prior_components", 0)
    return f"fitted ({k} Gaussians)" if prior == "fitted" else "N(0, I)"


def render_drawn(drawn: list[dict], j: dict) -> list[str]:
    """The drawn-digits table: each vae's default prior at temperature 1 (the target) and 0.8, and beside
    a fitted prior, N(0, I) at 1. Entries measured before fitted priors have no prior: N(0, I)."""
    lo, hi = CLASS_SHARE
    defaults = "; ".join(f"{e['model']}: {prior_name(e, e['samples'][0].get('prior', 'standard'))}" for e in drawn)
    out = ["", "### Drawn digits", "",
           f"{SAMPLES:,} digits drawn from each vae's prior (seed {SAMPLE_SEED}), judged. A vae's default prior, "
           "the one `POST /v1/sample` and `aelink sample` draw from unless asked otherwise (`prior`), is N(0, I) "
           "unless its decoder half holds a fitted prior: a Gaussian mixture (full covariances) fitted after "
           "training by EM (scikit-learn's GaussianMixture, the run's seed) to the codes of the training images, "
           "their posterior means as the sender sends them (ex-post density estimation, Ghosh et al. 2020). "
           f"Default priors: {defaults}. The temperature scales N(0, I)'s std, or each Gaussian's spread about its "
           f"mean. Target (issue 11), for the default prior at temperature 1: at least {CONFIDENT_SHARE:g}% judged "
           f"with confidence >= {CONFIDENCE:g}, and every class between {lo:g}% and {hi:g}% of them. For scale: "
           f"the judge is that confident of {j['original_confident_share']:.1f}% of the real test digits"
           + "".join(f", of {e['reconstructions_confident_share']:.1f}% of {e['model']}'s reconstructions of them"
                     for e in drawn if "reconstructions_confident_share" in e)
           + " (drawn digits can hardly do better than a model's own reconstructions).", "",
           "| model | prior | temperature | confident | class shares (0..9, %) | target |", "|---|---|---|---|---|---|"]
    for e in drawn:
        for s in e["samples"]:
            shares = " ".join(f"{x:.1f}" for x in s["class_shares"])
            target = s.get("target", s["temperature"] == 1.0)
            verdict = ("met" if s["meets_target"] else "**missed**") if target else "-"
            out.append(f"| {e['model']} | {prior_name(e, s.get('prior', 'standard'))} | {s['temperature']:g} "
                       f"| {s['confident_share']:.1f}% | {shares} | {verdict} |")
    return out

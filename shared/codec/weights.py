"""Weight halves on disk: `encoder.safetensors` and `decoder.safetensors`.

Each half holds only its own tensors plus metadata: the model config (JSON), the SHA-256 of each
half's tensors, and the pair fingerprint, a hash over the config and both halves' digests. A half can
thus prove on its own that it is intact and which pair it belongs to, without the other half's tensors.
This module knows nothing of either half's layers: callers pass the module class to build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from shared.codec.config import ModelConfig
from shared.codec.mixture import MixturePrior
from shared.codec.tables import EntropyTables

FORMAT = "aelink-half-v1"
HALVES = ("encoder", "decoder")
# An rd model's learned prior (the autoencoder's `prior.*`): the halves hold its integer tables instead.
# A vae's fitted mixture is the decoder's own (`decoder.prior.*`): it goes to the decoder half alone.
TRAINING_ONLY = ("prior",)
FINGERPRINT_HEX = 16  # 64 bits: plenty to tell weight sets apart, short enough for every code header


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or not the half it should be. The message names the file."""


@dataclass(frozen=True)
class HalfWeights:
    module: nn.Module
    config: ModelConfig
    half: str
    fingerprint: str
    path: Path


def tensors_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in name order: equal digests, equal tensors."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def pair_fingerprint(config: ModelConfig, encoder_digest: str, decoder_digest: str) -> str:
    text = "\n".join(["aelink-pair-v1", config.to_json(), encoder_digest, decoder_digest])
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_HEX]


def split_state(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split an autoencoder state dict ('encoder.*', 'decoder.*') into the two halves' own names,
    leaving out what only training uses ('prior.*')."""
    halves: dict[str, dict[str, torch.Tensor]] = {h: {} for h in HALVES}
    for name, tensor in state.items():
        prefix, _, rest = name.partition(".")
        if prefix in TRAINING_ONLY:
            continue
        if prefix not in halves or not rest:
            raise WeightsError(f"tensor {name!r} belongs to neither half")
        halves[prefix][rest] = tensor.detach().contiguous().cpu()
    return halves


def save_halves(config: ModelConfig, state: Mapping[str, torch.Tensor], out_dir: str | Path) -> str:
    """Write encoder.safetensors and decoder.safetensors into out_dir; returns the pair fingerprint."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    halves = split_state(state)
    digests = {h: tensors_digest(t) for h, t in halves.items()}
    fingerprint = pair_fingerprint(config, digests["encoder"], digests["decoder"])
    for half, tensors in halves.items():
        meta = {
            "format": FORMAT,
            "half": half,
            "config": config.to_json(),
            "fingerprint": fingerprint,
            "encoder_sha256": digests["encoder"],
            "decoder_sha256": digests["decoder"],
        }
        write_tensors(tensors, out / f"{half}.safetensors", meta)
    return fingerprint


def write_tensors(tensors: Mapping[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    """A safetensors file with metadata, written atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(dict(tensors), str(tmp), metadata=meta)
    tmp.chmod(0o644)  # safetensors writes 0600; a service may run as another user than the trainer
    tmp.replace(path)


def read_tensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and tensors; WeightsError (naming the file) when it is unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


def read_half(path: str | Path, half: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Read a half's metadata and tensors, with errors that name the file and the problem."""
    path = Path(path)
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}")
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file (expected the {half} half)")
    meta, tensors = read_tensors(path)
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an aelink weights half (format {meta.get('format')!r})")
    if meta.get("half") != half:
        raise WeightsError(f"{path}: holds the {meta.get('half')!r} half, expected the {half} half")
    missing = {"config", "fingerprint", "encoder_sha256", "decoder_sha256"} - set(meta)
    if missing:
        raise WeightsError(f"{path}: metadata lacks {sorted(missing)}")
    return meta, tensors


def load_half(
    path: str | Path, half: str, build: Callable[[ModelConfig], nn.Module]
) -> HalfWeights:
    """Load one half, check it holds exactly that half's tensors and matches its fingerprint."""
    path = Path(path)
    meta, tensors = read_half(path, half)
    try:
        config = ModelConfig.from_json(meta["config"])
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: bad model config in metadata ({e})") from None
    module = build(config)
    expected = module.state_dict()
    missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: tensors do not match the {half} of {config.name!r}"
            f" (missing {sorted(missing)}, unexpected {sorted(unexpected)})"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape or t.dtype != expected[name].dtype:
            raise WeightsError(
                f"{path}: tensor {name!r} is {t.dtype}{tuple(t.shape)},"
                f" expected {expected[name].dtype}{tuple(expected[name].shape)}"
            )
    if tensors_digest(tensors) != meta[f"{half}_sha256"]:
        raise WeightsError(f"{path}: tensor bytes do not match their recorded SHA-256 (corrupt)")
    fingerprint = pair_fingerprint(config, meta["encoder_sha256"], meta["decoder_sha256"])
    if fingerprint != meta["fingerprint"]:
        raise WeightsError(f"{path}: fingerprint {meta['fingerprint']} does not match its contents")
    module.load_state_dict(tensors)
    check_filled(module, path)
    module.eval().requires_grad_(False)
    return HalfWeights(module, config, half, fingerprint, path)


# Buffers a fresh module holds as zeros and export or fitting fills: a half loaded with the zeros would
# load, then fail on its first code or draw.
FILLED = {EntropyTables: "coding tables", MixturePrior: "fitted prior"}


def check_filled(module: nn.Module, path: Path) -> None:
    """Every entropy table and fitted prior in the module holds real values (its own `check()`)."""
    for name, sub in module.named_modules():
        what = FILLED.get(type(sub))
        if what is None:
            continue
        try:
            sub.check()
        except ValueError as e:
            raise WeightsError(f"{path}: {name} holds no valid {what} ({e})") from None

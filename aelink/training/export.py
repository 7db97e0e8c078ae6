"""Split a full training checkpoint into the encoder half and the decoder half (for rd models, with the
prior's integer tables built into both; for vae models with a fitted prior, that prior in the decoder's)."""

from __future__ import annotations

from pathlib import Path

import torch

from shared.codec.config import ModelConfig
from shared.codec.weights import WeightsError, save_halves


def read_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict]:
    """A checkpoint's model config, model tensors and whole state; WeightsError naming a bad file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code runs
        return ModelConfig.from_json(state["config"]), state["model"], state
    except Exception as e:  # torch.load raises many kinds (pickle, struct, zip) on a bad file
        raise WeightsError(f"{path}: not an aelink checkpoint ({e})") from None


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> str:
    path = Path(checkpoint)
    config, tensors, _ = read_checkpoint(path)
    from aelink.training.autoencoder import Autoencoder

    model = Autoencoder(config)
    if set(tensors) != set(model.state_dict()):
        raise WeightsError(f"{path}: tensors do not match a {config.name!r} autoencoder")
    # rd models: the halves' coding tables are rebuilt from the prior, whatever copy the checkpoint holds
    tables = {k for k in tensors if k.split(".")[1:2] == ["entropy"]}
    model.load_state_dict({k: v for k, v in tensors.items() if k not in tables}, strict=False)
    if config.prior_components:  # fitted at the end of training: a checkpoint from before holds zeros
        try:
            model.decoder.prior.check()
        except ValueError as e:
            raise WeightsError(f"{path}: its prior is not fitted ({e}); fit it with `aelink prior fit`") from None
    return save_halves(config, model.eval().export_state(), out_dir)

"""Weight halves: split, fingerprint, and every way a half can be wrong."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aelink.training.autoencoder import Autoencoder
from shared.codec.config import preset
from shared.codec.decoder import load_decoder
from shared.codec.encoder import load_encoder
from shared.codec.weights import WeightsError, save_halves


@pytest.fixture(params=["seed", "compact16"])
def halves(request, tmp_path):
    torch.manual_seed(0)
    model = Autoencoder(preset(request.param))
    fingerprint = save_halves(model.config, model.state_dict(), tmp_path)
    return model, fingerprint, tmp_path


def tensors_and_meta(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_round_trip(halves):
    model, fingerprint, folder = halves
    encoder, enc = load_encoder(folder / "encoder.safetensors")
    decoder, dec = load_decoder(folder / "decoder.safetensors")
    assert enc.fingerprint == dec.fingerprint == fingerprint and len(fingerprint) == 16
    assert enc.config == model.config
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(decoder(encoder(x)), model.eval()(x))


def test_each_half_holds_only_its_tensors(halves):
    model, _, folder = halves
    enc, _ = tensors_and_meta(folder / "encoder.safetensors")
    dec, meta = tensors_and_meta(folder / "decoder.safetensors")
    assert set(enc) == set(model.encoder.state_dict())
    assert set(dec) == set(model.decoder.state_dict())
    assert json.loads(meta["config"])["name"] == model.config.name


def test_fingerprint_depends_on_both_halves_and_config(tmp_path):
    torch.manual_seed(0)
    model = Autoencoder(preset("compact16"))
    a = save_halves(model.config, model.state_dict(), tmp_path / "a")
    assert save_halves(model.config, model.state_dict(), tmp_path / "b") == a  # deterministic
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.net.0.bias"][0] += 1e-3
    assert save_halves(model.config, state, tmp_path / "c") != a
    assert save_halves(model.config.with_(name="other"), model.state_dict(), tmp_path / "d") != a


def test_wrong_half_is_refused(halves):
    _, _, folder = halves
    with pytest.raises(WeightsError, match="holds the 'decoder' half"):
        load_encoder(folder / "decoder.safetensors")
    with pytest.raises(WeightsError, match="holds the 'encoder' half"):
        load_decoder(folder / "encoder.safetensors")


@pytest.mark.parametrize("tamper, message", [
    ("flip", "SHA-256"), ("drop", "missing"), ("extra", "unexpected"), ("shape", "expected"),
    ("fingerprint", "fingerprint"),
])
def test_tampered_half_is_refused(halves, tamper, message):
    _, _, folder = halves
    path = folder / "encoder.safetensors"
    tensors, meta = tensors_and_meta(path)
    name = sorted(tensors)[0]
    if tamper == "flip":
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] += 1.0
    elif tamper == "drop":
        del tensors[name]
    elif tamper == "extra":
        tensors["net.99.weight"] = torch.zeros(1)
    elif tamper == "shape":
        tensors[name] = torch.zeros(1, 2, 3)
    elif tamper == "fingerprint":
        meta["fingerprint"] = "0" * 16
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsError, match=message) as err:
        load_encoder(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64])
def test_garbage_file_is_refused(tmp_path, content):
    path = tmp_path / "encoder.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_encoder(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_decoder(tmp_path / "decoder.safetensors")


def test_export_splits_a_checkpoint(tmp_path):
    from aelink.cli import main

    torch.manual_seed(0)
    model = Autoencoder(preset("compact16"))
    torch.save({"config": model.config.to_json(), "model": model.state_dict()}, tmp_path / "checkpoint.pt")
    assert main(["export", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path / "halves")]) == 0
    encoder, enc = load_encoder(tmp_path / "halves" / "encoder.safetensors")
    decoder, _ = load_decoder(tmp_path / "halves" / "decoder.safetensors")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(decoder(encoder(x)), model.eval()(x))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["export", str(tmp_path / "bad.pt")]) == 2

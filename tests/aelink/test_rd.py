"""Entropy-coded (rd) models: config compatibility, halves holding the tables, exact round trips of real
latents, codes made in one process and decoded in another, training and export."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from aelink.measure.evaluate import load_pair, transmit
from aelink.training.autoencoder import Autoencoder
from aelink.training.train import TrainOptions, train
from shared.codec.config import PRESETS, ModelConfig, preset
from shared.codec.decoder import load_decoder
from shared.codec.encoder import load_encoder
from shared.codec.rangecoder import CodeError
from shared.codec.weights import WeightsError, pair_fingerprint, save_halves

ROOT = Path(__file__).resolve().parents[2]
# The config JSON of every preset shipped before rd models existed: their weights hash it into the
# pair fingerprint, so it must not change by a byte.
OLD_JSON = {
    "seed": '{"channels":1,"code_size":null,"extra":{},"image_size":28,"kind":"seed","loss":"bce","name":"seed",'
            '"noise":0.0,"widths":[32,32]}',
    "compact16": '{"channels":1,"code_size":16,"extra":{},"image_size":28,"kind":"compact","loss":"mse",'
                 '"name":"compact16","noise":0.0,"widths":[32,64,128]}',
    "compact32": '{"channels":1,"code_size":32,"extra":{},"image_size":28,"kind":"compact","loss":"mse",'
                 '"name":"compact32","noise":0.0,"widths":[32,64,128]}',
    "compact64": '{"channels":1,"code_size":64,"extra":{},"image_size":28,"kind":"compact","loss":"mse",'
                 '"name":"compact64","noise":0.0,"widths":[32,64,128]}',
    "denoise32": '{"channels":1,"code_size":32,"extra":{},"image_size":28,"kind":"compact","loss":"mse",'
                 '"name":"denoise32","noise":0.4,"widths":[32,64,128]}',
}
TINY = ModelConfig("tiny-rd", kind="rd", code_size=4, widths=(8, 16), loss="mse", lmbda=0.01, latent="spatial")
SMALL = dict(train_subset=1024, test_subset=256, batch_size=128, progress=False)


def quiet(_):
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared with trainings; these models are tiny
    yield
    torch.set_num_threads(threads)


# --- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OLD_JSON))
def test_old_presets_keep_their_exact_json_and_fingerprint(name):
    config = preset(name)
    assert config.to_json() == OLD_JSON[name]
    assert ModelConfig.from_json(OLD_JSON[name]) == config  # JSON without lmbda or latent loads
    old = hashlib.sha256("\n".join(["aelink-pair-v1", OLD_JSON[name], "e", "d"]).encode()).hexdigest()[:16]
    assert pair_fingerprint(config, "e", "d") == old


def test_rd_presets_round_trip_and_carry_their_fields():
    for name in ("rd10", "rd16", "rd64"):
        config = preset(name)
        d = json.loads(config.to_json())
        assert d["kind"] == "rd" and d["lmbda"] == config.lmbda > 0
        assert ModelConfig.from_json(config.to_json()) == config
    assert preset("rd64").code_shape == (16, 7, 7) and json.loads(preset("rd64").to_json())["latent"] == "positional"
    assert {p.kind for p in PRESETS.values()} == {"seed", "compact", "rd", "vae"}


@pytest.mark.parametrize("bad", [
    dict(kind="rd", lmbda=0.0), dict(kind="rd", lmbda=float("inf")), dict(kind="rd", lmbda=0.1, code_size=0),
    dict(kind="compact", lmbda=0.1), dict(kind="compact", latent="spatial"), dict(kind="rd", lmbda=0.1, latent="grid"),
])
def test_bad_rd_configs_rejected(bad):
    with pytest.raises(ValueError):
        ModelConfig("bad", **bad)


# --- model and halves --------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY, TINY.with_(latent="vector", code_size=6),
                                    TINY.with_(latent="positional"), preset("rd64")], ids=lambda c: c.latent)
def test_forward_quantizes_and_rates(config):
    torch.manual_seed(0)
    model = Autoencoder(config)
    x = torch.rand(3, 1, 28, 28)
    terms = model.train().terms(x, x)
    assert terms["bits"] > 0 and terms["loss"] > terms["distortion"]
    terms["loss"].backward()
    assert model.prior.matrices[0].grad.abs().sum() > 0  # the rate trains the prior
    y, _ = model.eval().latents(x)
    assert y.shape == (3, *config.code_shape)
    model.build_tables()
    assert torch.equal(model.decoder.decompress(model.encoder.compress(x)), y)  # what the codes hold
    tables = config.code_numel if config.latent == "positional" else config.code_size
    assert model.encoder.entropy.cdf.shape[0] == tables == config.prior_channels
    assert model.encoder.entropy.cdf.shape[1] == (130 if config.latent == "positional" else 514)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """A tiny spatial rd model trained for two epochs on 1,024 real images, exported to its halves."""
    out = tmp_path_factory.mktemp("rd")
    history, fingerprint = train(TINY, TrainOptions(out=out, epochs=2, data_dir=str(data_dir), **SMALL), log=quiet)
    return out, history, fingerprint


def test_halves_hold_the_same_tables_and_not_the_prior(run):
    out, _, fingerprint = run
    halves = {}
    for half in ("encoder", "decoder"):
        with safe_open(str(out / f"{half}.safetensors"), framework="pt") as f:
            halves[half] = {k: f.get_tensor(k) for k in f.keys()}
            assert f.metadata()["fingerprint"] == fingerprint
        assert not any(k.startswith("prior") for k in halves[half])
    for k in ("cdf", "cdf_length", "offset", "medians"):
        assert torch.equal(halves["encoder"][f"entropy.{k}"], halves["decoder"][f"entropy.{k}"])
    assert halves["encoder"]["entropy.cdf"].dtype == torch.int32


def test_validation_reports_the_rate(run):
    _, history, _ = run
    last = history[-1]
    assert {"train_bits", "val_bits", "val_bytes", "val_bytes_estimate", "val_psnr"} <= set(last)
    assert last["val_bytes_estimate"] < last["val_bytes"] < last["val_bytes_estimate"] + 3


def test_real_latents_round_trip_exactly(run, test_images):
    encoder, decoder, _ = load_pair(run[0])
    x = test_images[:300]
    y = encoder(x)
    codes = encoder.entropy.compress(y)
    y_hat = decoder.decompress(codes)
    medians = decoder.entropy.medians.view(1, -1, 1, 1)
    assert torch.equal(y_hat, torch.round(y - medians) + medians)
    assert torch.equal(decoder.decompress(codes[7:8]), y_hat[7:8])  # each code stands alone
    recon, sent = transmit(encoder, decoder, x, batch=128)
    assert sent == codes and torch.equal(recon, decoder(y_hat))
    real = sum(map(len, codes)) * 8
    information = encoder.entropy.information_bits(y).sum().item()
    assert information <= real <= information + 8 * len(codes)  # the coder adds under a byte a code


def test_damaged_codes_raise(run, test_images):
    encoder, decoder, _ = load_pair(run[0])
    codes = encoder.compress(test_images[:50])
    caught = 0
    for code in codes:
        for bad in (code[:-1], code + b"\x17\x42"):
            try:
                decoder.decompress([bad])
            except CodeError:
                caught += 1
    assert caught >= 95


def test_a_half_without_tables_is_refused(tmp_path):
    torch.manual_seed(0)
    model = Autoencoder(TINY)
    save_halves(TINY, model.state_dict(), tmp_path)  # skips export_state: the tables are zeros
    with pytest.raises(WeightsError, match="no valid coding tables"):
        load_encoder(tmp_path / "encoder.safetensors")
    with pytest.raises(WeightsError, match="no valid coding tables"):
        load_decoder(tmp_path / "decoder.safetensors")


def test_export_of_the_checkpoint_gives_the_same_halves(run, tmp_path):
    from aelink.training.export import export_checkpoint

    out, _, fingerprint = run
    assert export_checkpoint(out / "checkpoint.pt", tmp_path) == fingerprint


def test_resume_matches_an_uninterrupted_run(tmp_path, data_dir):
    """The prior's training noise comes from the global generator, which the checkpoint keeps."""
    def go(out, epochs, resume=False):
        opts = TrainOptions(out=out, epochs=epochs, resume=resume, data_dir=str(data_dir),
                            **{**SMALL, "train_subset": 512})
        return train(TINY, opts, log=quiet)[1]

    straight = go(tmp_path / "a", 2)
    go(tmp_path / "b", 1)
    assert go(tmp_path / "b", 2, resume=True) == straight


# --- one process encodes, another decodes ------------------------------------------------------------

SENDER = """
import json, sys, torch
from aelink.data.datasets import load_split, to_tensor
from shared.codec.encoder import load_encoder
encoder, _ = load_encoder(sys.argv[1])
x = to_tensor(load_split("test")[0][:100])
with torch.no_grad():
    codes = encoder.compress(x)
assert "shared.codec.decoder" not in sys.modules
print(json.dumps([c.hex() for c in codes]))
"""

RECEIVER = """
import json, sys, torch
from shared.codec.decoder import load_decoder
decoder, _ = load_decoder(sys.argv[1])
codes = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
with torch.no_grad():
    y = decoder.decompress(codes)
    images = decoder(y)
assert "shared.codec.encoder" not in sys.modules
torch.save({"latents": y, "images": images}, sys.argv[2])
"""


def test_encode_in_one_process_decode_in_another(run, test_images, tmp_path, data_dir):
    out = run[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AELINK_DATA_DIR": str(data_dir)}
    sent = subprocess.run([sys.executable, "-c", SENDER, str(out / "encoder.safetensors")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True).stdout
    subprocess.run([sys.executable, "-c", RECEIVER, str(out / "decoder.safetensors"), str(tmp_path / "got.pt")],
                   input=sent, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    got = torch.load(tmp_path / "got.pt", weights_only=True)
    encoder, decoder, _ = load_pair(out)
    codes = [bytes.fromhex(h) for h in json.loads(sent)]
    assert codes == encoder.compress(test_images[:100])  # the same bytes as this process makes
    assert torch.equal(got["latents"], decoder.decompress(codes))  # decoded to the same latents
    assert torch.allclose(got["images"], decoder(got["latents"]), atol=1e-6)

"""The decoder draws alone: POST /v1/sample (a vae's prior: N(0, I) or its fitted mixture) and POST
/v1/interpolate (every kind), over real HTTP: the images are the decodes of the prior's draws and of the
codes' line, and bad requests get problem details."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from service_helpers import OCTET, PROBLEM, assert_problem, decode_raw, encode_raw, train_tiny

from aelink.client import LocalService
from shared.codec.config import ModelConfig
from shared.codec.decoder import load_decoder
from shared.codec.latent import sample_prior
from shared.service.images import png_to_pixels, to_uint8

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
# a light KL weight: after one tiny epoch at beta 1 every digit decodes to the same blur
VAE = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce", beta=0.01)
FITTED = VAE.with_(name="tiny-vae-fitted", prior_components=4)  # its mixture fitted at the end of training
JSON = {"Content-Type": "application/json"}
RAW = {"Content-Type": OCTET, "Accept": OCTET}


@pytest.fixture(scope="module")
def vae_weights(tmp_path_factory, data_dir):
    """A tiny vae trained for one epoch on 1,024 real images, in a weights folder."""
    root = train_tiny(VAE, tmp_path_factory.mktemp("weights"), data_dir)
    return train_tiny(FITTED, root, data_dir)


def pair(model: str, weights_dir) -> dict[str, LocalService]:
    env = {"MODEL": model, "WEIGHTS_DIR": str(weights_dir), "THREADS": "1", "MAX_IMAGES": "256"}
    return {h: LocalService(h, env={f"AELINK_{h.upper()}_{k}": v for k, v in env.items()})
            for h in ("encoder", "decoder")}


@pytest.fixture(scope="module")
def drawn(vae_weights, weights_dir):
    """Clients of the tiny vae's two services and of the committed rd10's (entropy-coded codes)."""
    services = {"vae": pair(VAE.name, vae_weights), "rd": pair("rd10", weights_dir)}
    services["fitted"] = {"decoder": pair(FITTED.name, vae_weights)["decoder"]}
    every = [s for p in services.values() for s in p.values()]
    try:
        for s in every:
            s.start()
        for s in every:
            s.wait_ready(timeout=90)
        clients = {f"{k}_{h}": httpx.Client(base_url=s.url, timeout=30) for k, p in services.items()
                   for h, s in p.items()}
        yield clients
        for c in clients.values():
            c.close()
    finally:
        for s in every:
            s.stop()


def sample(client: httpx.Client, accept: str = OCTET, **body) -> httpx.Response:
    return client.post("/v1/sample", json=body, headers={"Accept": accept})


def test_samples_are_the_decodes_of_the_seeded_prior_draws(drawn, vae_weights):
    r = sample(drawn["vae_decoder"], n=5, seed=11, temperature=0.7)
    assert r.status_code == 200 and r.headers["x-aelink-seed"] == "11"
    images = np.frombuffer(r.content, np.uint8).reshape(-1, 28, 28)
    decoder, _ = load_decoder(vae_weights / VAE.name / "decoder.safetensors")
    with torch.inference_mode():
        expected = to_uint8(decoder(torch.from_numpy(sample_prior(VAE, 5, 11, 0.7))).numpy())
    assert np.array_equal(images, expected)


def test_sampling_is_deterministic_for_a_seed(drawn):
    dec = drawn["vae_decoder"]
    first = sample(dec, n=6, seed=3).content
    assert sample(dec, n=6, seed=3).content == first
    assert sample(dec, n=6, seed=4).content != first
    assert sample(dec, n=2, seed=3).content == first[: 2 * 784]  # more digits keep the first draws
    body = sample(dec, "application/json", n=2, seed=3).json()
    assert body["seed"] == 3 and body["temperature"] == 1.0 and body["count"] == len(body["images"]) == 2
    assert body["prior"] == "standard"  # a vae without a fitted prior draws from N(0, I)
    one = sample(dec, "image/png", seed=3)
    assert one.headers["content-type"] == "image/png"
    assert np.array_equal(to_uint8(png_to_pixels(one.content)), np.frombuffer(first[:784], np.uint8).reshape(1, 28, 28))


def fitted_expected(vae_weights, n: int, seed: int, temperature: float, prior: str) -> np.ndarray:
    decoder, _ = load_decoder(vae_weights / FITTED.name / "decoder.safetensors")
    mixture = decoder.prior if prior == "fitted" else None
    with torch.inference_mode():
        return to_uint8(decoder(torch.from_numpy(sample_prior(FITTED, n, seed, temperature, mixture))).numpy())


def test_a_fitted_prior_is_the_default_and_standard_can_be_asked(drawn, vae_weights):
    dec = drawn["fitted_decoder"]
    r = sample(dec, n=5, seed=11, temperature=0.8)
    assert r.status_code == 200 and r.headers["x-aelink-prior"] == "fitted"
    fitted = np.frombuffer(r.content, np.uint8).reshape(-1, 28, 28)
    assert np.array_equal(fitted, fitted_expected(vae_weights, 5, 11, 0.8, "fitted"))
    assert sample(dec, n=5, seed=11, temperature=0.8, prior="fitted").content == r.content
    r = sample(dec, n=5, seed=11, temperature=0.8, prior="standard")
    assert r.status_code == 200 and r.headers["x-aelink-prior"] == "standard"
    standard = np.frombuffer(r.content, np.uint8).reshape(-1, 28, 28)
    assert np.array_equal(standard, fitted_expected(vae_weights, 5, 11, 0.8, "standard"))
    assert not np.array_equal(standard, fitted)
    body = sample(dec, "application/json", n=2, seed=11).json()
    assert body["prior"] == "fitted" and body["model"] == FITTED.name
    assert sample(dec, "application/json", n=2, seed=11, prior="standard").json()["prior"] == "standard"


def test_asking_a_fitted_prior_of_a_model_without_one_is_refused(drawn):
    dec = drawn["vae_decoder"]
    body = assert_problem(sample(dec, n=2, prior="fitted"), 409, "tiny-vae", "no fitted prior", "standard")
    assert body["type"].endswith(":no-fitted-prior")
    assert sample(dec, n=2, prior="standard").headers["x-aelink-prior"] == "standard"
    assert_problem(sample(dec, n=2, prior="mixture"), 422, "prior")


def test_without_a_seed_the_service_picks_one_and_says_which(drawn):
    dec = drawn["vae_decoder"]
    r = dec.post("/v1/sample", headers={"Accept": OCTET})  # no body at all: one digit
    seed = int(r.headers["x-aelink-seed"])
    assert r.status_code == 200 and len(r.content) == 784
    assert sample(dec, seed=seed).content == r.content


@pytest.mark.parametrize("body, status, words", [
    ({"n": 257}, 413, ["257", "256"]),
    ({"n": 0}, 422, ["n"]),
    ({"temperature": -1}, 422, ["temperature"]),
    ({"seed": -5}, 422, ["seed"]),
    ({"count": 3}, 422, ["count"]),
])
def test_bad_sample_requests_get_problem_details(drawn, body, status, words):
    assert_problem(drawn["vae_decoder"].post("/v1/sample", json=body), status, *words)


def test_sample_refuses_unreadable_bodies_and_answers(drawn):
    dec = drawn["vae_decoder"]
    assert_problem(dec.post("/v1/sample", content=b"{", headers=JSON), 400)
    assert_problem(dec.post("/v1/sample", content=b"n=2", headers={"Content-Type": "text/plain"}), 415)
    assert_problem(sample(dec, "image/png", n=2), 406, "one image")


def test_models_without_a_prior_say_why_they_cannot_sample(dec):
    body = assert_problem(sample(dec, n=2), 409, "compact32", "no prior", "vae")
    assert body["type"].endswith(":no-prior")


def interpolate(dec: httpx.Client, codes: bytes | str, steps: int, binary: bool = True, accept: str = OCTET):
    headers = {"Content-Type": OCTET if binary else "application/json", "Accept": accept}
    return dec.post("/v1/interpolate", params={"steps": steps}, content=codes, headers=headers)


@pytest.mark.parametrize("model", ["vae", "compact", "rd"])
def test_interpolation_ends_are_the_decodes_of_its_two_codes(drawn, enc, dec, digits, model):
    enc, dec = (enc, dec) if model == "compact" else (drawn[f"{model}_encoder"], drawn[f"{model}_decoder"])
    fmt = "rc" if model == "rd" else "f32"
    codes = encode_raw(enc, digits[:2], fmt).content
    ends = decode_raw(dec, codes)
    r = interpolate(dec, codes, 7)
    assert r.status_code == 200, r.text
    line = np.frombuffer(r.content, np.uint8).reshape(-1, 28, 28)
    assert len(line) == 7 and np.array_equal(line[0], ends[0]) and np.array_equal(line[-1], ends[1])
    assert not np.array_equal(ends[0], ends[1])
    assert not np.array_equal(line[3], line[0]) and not np.array_equal(line[3], line[-1])
    as_json = encode_raw(enc, digits[:2], fmt, binary=False).text  # the encoder's JSON answer, unchanged
    body = interpolate(dec, as_json, 7, binary=False, accept="application/json").json()
    assert body["count"] == 7 and body["t"][0] == 0.0 and body["t"][-1] == 1.0
    assert np.array_equal(to_uint8(png_to_pixels(__import__("base64").b64decode(body["images"][-1]))), line[-1:])


def test_bad_interpolation_requests_get_problem_details(drawn, enc, dec, digits):
    vae_dec = drawn["vae_decoder"]
    two = encode_raw(drawn["vae_encoder"], digits[:2]).content
    assert_problem(interpolate(vae_dec, encode_raw(drawn["vae_encoder"], digits[:1]).content, 5), 422, "1 codes", "two")
    assert_problem(interpolate(vae_dec, encode_raw(drawn["vae_encoder"], digits[:3]).content, 5), 422, "3 codes")
    assert_problem(interpolate(vae_dec, two, 1), 422, "steps")
    assert_problem(interpolate(vae_dec, two, 257), 413, "257", "256")
    assert_problem(interpolate(vae_dec, encode_raw(enc, digits[:2]).content, 5), 409, "fingerprint")
    assert_problem(interpolate(vae_dec, b"AELC", 5), 400)
    assert_problem(vae_dec.post("/v1/interpolate", content=two, headers={"Content-Type": "text/plain"}), 415)
    assert_problem(interpolate(vae_dec, two, 3, accept="image/png"), 406)


def test_openapi_documents_the_drawing_endpoints(dec):
    paths = dec.get("/openapi.json").json()["paths"]
    for path, statuses in (("/v1/sample", ("409", "413", "422")), ("/v1/interpolate", ("409", "413", "422"))):
        op = paths[path]["post"]
        assert {"application/json", OCTET, "image/png"} <= set(op["responses"]["200"]["content"])
        for s in statuses:
            assert PROBLEM in op["responses"][s]["content"]
    assert OCTET in paths["/v1/interpolate"]["post"]["requestBody"]["content"]
    asked = paths["/v1/sample"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert asked["properties"]["prior"]["anyOf"][0]["enum"] == ["fitted", "standard"]
    assert "prior" in dec.get("/openapi.json").json()["components"]["schemas"]["SampleResponse"]["required"]

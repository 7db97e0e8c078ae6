"""An entropy-coded (rd) model behind both services: rc codes in JSON and binary, the same bytes and images
as the halves give locally, the fixed-length formats beside them, and damaged codes refused with a 4xx."""

from __future__ import annotations

import base64
import dataclasses

import httpx
import numpy as np
import pytest
import torch
from service_helpers import OCTET, assert_problem, decode_raw, encode_raw, train_tiny

from aelink.client import LocalService
from shared.codec import wire
from shared.codec.config import ModelConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
RD = ModelConfig("tiny-rd", kind="rd", code_size=4, widths=(8, 16), loss="mse", lmbda=0.01, latent="spatial")
RAW = {"Content-Type": OCTET}


@pytest.fixture(scope="module")
def rd_weights(tmp_path_factory, data_dir):
    """A tiny spatial rd model trained for one epoch on 1,024 real images, in a weights folder."""
    return train_tiny(RD, tmp_path_factory.mktemp("weights"), data_dir)


@pytest.fixture(scope="module")
def rd_services(rd_weights, weights_dir):
    env = {"MODEL": RD.name, "WEIGHTS_DIR": str(rd_weights), "THREADS": "1"}
    services = {half: LocalService(half, env={f"AELINK_{half.upper()}_{k}": v for k, v in env.items()})
                for half in ("encoder", "decoder")}
    try:
        for s in services.values():
            s.start()
        for s in services.values():
            s.wait_ready(timeout=90)
        with httpx.Client(base_url=services["encoder"].url, timeout=30) as e, \
                httpx.Client(base_url=services["decoder"].url, timeout=30) as d:
            yield e, d, services
    finally:
        for s in services.values():
            s.stop()


@pytest.fixture(scope="module")
def rd_enc(rd_services):
    return rd_services[0]


@pytest.fixture(scope="module")
def rd_dec(rd_services):
    return rd_services[1]


def test_model_info_offers_rc_first(rd_enc, rd_dec):
    for client in (rd_enc, rd_dec):
        info = client.get("/v1/model").json()
        assert info["kind"] == "rd" and info["code_shape"] == [4, 7, 7]
        assert info["formats"] == ["rc", "f32", "u8"]
        assert info["bytes_per_code"] == {"rc": "variable", "f32": 4 * 196, "u8": 8 + 196}


@pytest.mark.parametrize("binary", [False, True], ids=["JSON codes", "binary codes"])
def test_rc_round_trip_matches_the_halves_locally(rd_enc, rd_dec, rd_weights, digits, binary):
    from aelink.measure.evaluate import load_pair, transmit

    r = encode_raw(rd_enc, digits[:20], fmt="rc", binary=binary)
    if binary:
        codes = wire.from_binary(r.content)
    else:
        body = r.json()
        codes = wire.from_json(body)
        assert body["code_lengths"] == [len(p) for p in codes.payloads] and "code_bytes" not in body
    assert codes.format == "rc" and codes.shape == (4, 7, 7) and len(codes) == 20
    remote = decode_raw(rd_dec, r.content) if binary else None
    if not binary:
        answer = rd_dec.post("/v1/decode", content=r.content, headers={"Content-Type": "application/json",
                                                                       "Accept": OCTET})
        assert answer.status_code == 200, answer.text
        remote = np.frombuffer(answer.content, np.uint8).reshape(-1, 28, 28)
    encoder, decoder, _ = load_pair(rd_weights / RD.name)
    x = torch.from_numpy(digits[:20].astype(np.float32) / 255.0)[:, None]
    with torch.inference_mode():
        recon, local_codes = transmit(encoder, decoder, x)
    assert list(codes.payloads) == local_codes  # the service sends the codes the halves make
    local = np.clip(np.rint(recon.numpy() * 255), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    assert np.abs(local.astype(int) - remote.astype(int)).max() <= 1


def test_rc_is_the_default_and_varints_frame_it(rd_enc):
    r = rd_enc.post("/v1/encode", content=np.zeros((3, 28, 28), np.uint8).tobytes(),
                    headers={**RAW, "Accept": OCTET})
    codes = wire.from_binary(r.content)
    assert codes.format == "rc"
    assert len(r.content) == wire.header_size(3) + sum(1 + len(p) for p in codes.payloads)


@pytest.mark.parametrize("fmt", ["f32", "u8"])
def test_fixed_length_formats_still_work_for_rd(rd_enc, rd_dec, digits, fmt):
    images = decode_raw(rd_dec, encode_raw(rd_enc, digits[:4], fmt=fmt).content)
    assert images.shape == (4, 28, 28)


@pytest.fixture(scope="module")
def rc(rd_enc, digits):
    return wire.from_binary(encode_raw(rd_enc, digits[:8], fmt="rc").content)


def with_payload(codes: wire.Codes, i: int, payload: bytes) -> wire.Codes:
    payloads = list(codes.payloads)
    payloads[i] = payload
    return dataclasses.replace(codes, payloads=tuple(payloads))


def json_of(codes: wire.Codes) -> dict:
    return {"json": wire.to_json(codes)}


def binary_of(codes: wire.Codes) -> dict:
    return {"content": wire.to_binary(codes), "headers": RAW}


def overlong_first_length(codes: wire.Codes) -> dict:
    """The first code's one-byte varint length written in two bytes: the same number, not minimal."""
    data, head = wire.to_binary(codes), wire.header_size(len(codes.shape))
    return {"content": data[:head] + bytes([0x80 | data[head], 0]) + data[head + 1:], "headers": RAW}


DAMAGE = {  # name -> (request kwargs from the good codes, status, words the detail must hold)
    "truncated code (JSON)": (lambda c: json_of(with_payload(c, 2, c.payloads[2][:-1])), 422, ["code 2"]),
    "truncated code (binary)": (lambda c: binary_of(with_payload(c, 0, c.payloads[0][:-1])), 422, ["code 0"]),
    "bytes appended to a code": (lambda c: json_of(with_payload(c, 1, c.payloads[1] + b"\x17\x42")), 422,
                                 ["code 1"]),
    "binary body cut short": (lambda c: {"content": wire.to_binary(c)[:-2], "headers": RAW}, 400, ["truncated"]),
    "binary body with trailing bytes": (lambda c: {"content": wire.to_binary(c) + b"\x00", "headers": RAW}, 400,
                                       ["trailing"]),
    "varint not minimal": (overlong_first_length, 400, ["minimal"]),
    "empty code": (lambda c: {"json": {**wire.to_json(c), "codes": [""]}}, 400, ["code 0 is 0 bytes"]),
    "header length set": (lambda c: {"content": wire.to_binary(c)[:20] + b"\x09\x00\x00\x00"
                                     + wire.to_binary(c)[24:], "headers": RAW}, 400, ["variable-length"]),
    "f32 codes of the wrong length": (lambda c: {"json": {**wire.to_json(c), "format": "f32",
                                                          "codes": [base64.b64encode(b"\x00" * 8).decode()]}},
                                      400, ["784"]),
}


@pytest.mark.parametrize("make, status, words", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_codes_get_a_clear_4xx(rd_dec, rc, make, status, words):
    assert_problem(rd_dec.post("/v1/decode", **make(rc)), status, *words)
    assert rd_dec.get("/healthz").status_code == 200


def test_corruption_is_caught_or_decodes_to_some_image(rd_dec, rc):
    """A flipped bit is caught about nine times in ten (shared.codec.rangecoder); never a 500."""
    statuses = []
    for i, payload in enumerate(rc.payloads):
        bad = bytes([payload[0] ^ 0x40]) + payload[1:]
        statuses.append(rd_dec.post("/v1/decode", **binary_of(with_payload(rc, i, bad))).status_code)
    assert set(statuses) <= {200, 422} and statuses.count(422) >= 4


def test_rc_is_refused_by_a_compact_model(enc, dec, rc, digits):
    assert_problem(enc.post("/v1/encode", params={"format": "rc"}, content=digits[:1].tobytes(), headers=RAW),
                   422, "rc", "not offered")
    fp = dec.get("/v1/model").json()["fingerprint"]
    mine = dataclasses.replace(rc, fingerprint=fp, shape=(32,))
    assert_problem(dec.post("/v1/decode", **binary_of(mine)), 422, "rc", "not offered")


def test_no_damaged_code_caused_a_server_error(rd_services):
    for svc in rd_services[2].values():
        log = svc.output()
        assert "Traceback" not in log and '" 500' not in log, log[-3000:]

"""Health, readiness, model info, model listing, Prometheus metrics and the OpenAPI docs of both services."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import OCTET, encode_raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
BOTH = ["enc", "dec"]


@pytest.fixture(params=BOTH)
def client(request):
    return request.getfixturevalue(request.param)


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_model_info_describes_the_pair(enc, dec):
    e, d = enc.get("/v1/model").json(), dec.get("/v1/model").json()
    assert e["half"] == "encoder" and d["half"] == "decoder"
    for info in (e, d):
        assert info["name"] == "compact32" and info["kind"] == "compact"
        assert info["code_shape"] == [32] and info["code_numel"] == 32
        assert info["bytes_per_code"] == {"f32": 128, "u8": 40} and info["binary_header_bytes"] == 28
        assert info["input_shape"] == [1, 28, 28] and info["formats"] == ["f32", "u8"]
        assert len(info["fingerprint"]) == 16
    assert e["fingerprint"] == d["fingerprint"]  # two halves of one pair


def test_models_lists_the_halves_in_the_weights_folder(enc, dec, weights_dir):
    listings = {}
    for client, half in ((enc, "encoder"), (dec, "decoder")):
        body = client.get("/v1/models").json()
        assert body["half"] == half and body["active"] == "compact32"
        names = {m["name"] for m in body["models"]}
        assert names == {p.parent.name for p in weights_dir.glob(f"*/{half}.safetensors")}
        assert [m["name"] for m in body["models"] if m["active"]] == ["compact32"]
        assert all(m.get("problem") is None and len(m["fingerprint"]) == 16 for m in body["models"])
        listings[half] = {m["name"]: m["fingerprint"] for m in body["models"]}
    shared = listings["encoder"].keys() & listings["decoder"].keys()
    assert all(listings["encoder"][n] == listings["decoder"][n] for n in shared)


def metric_samples(client) -> list:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return [s for fam in text_string_to_metric_families(r.text) for s in fam.samples]


def value(samples, name, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_metrics_count_requests_latency_images_and_batches(enc, digits):
    before = metric_samples(enc)
    encode_raw(enc, digits[:3])
    enc.post("/v1/encode", content=b"", headers={"Content-Type": OCTET})  # a 400 counts too
    after = metric_samples(enc)
    ok = {"service": "encoder", "route": "/v1/encode", "method": "POST", "status": "200"}
    assert value(after, "aelink_requests_total", **ok) == value(before, "aelink_requests_total", **ok) + 1
    bad = {**ok, "status": "400"}
    assert value(after, "aelink_requests_total", **bad) == value(before, "aelink_requests_total", **bad) + 1
    assert value(after, "aelink_images_total") == value(before, "aelink_images_total") + 3
    assert value(after, "aelink_batch_size_count") == value(before, "aelink_batch_size_count") + 1
    assert value(after, "aelink_batch_size_bucket", le="4.0") == value(before, "aelink_batch_size_bucket", le="4.0") + 1
    assert value(after, "aelink_request_duration_seconds_count", route="/v1/encode") >= 2
    info = [s for s in after if s.name == "aelink_model_info"]
    assert len(info) == 1 and info[0].labels["model"] == "compact32" and info[0].value == 1


def test_unmatched_paths_share_one_label(dec):
    dec.get("/no/such/path/1")
    dec.get("/no/such/path/2")
    routes = {s.labels.get("route") for s in metric_samples(dec) if s.name == "aelink_requests_total"}
    assert "unmatched" in routes and not any(r.startswith("/no/") for r in routes)


def test_openapi_docs_describe_every_form(enc, dec):
    assert enc.get("/docs").status_code == 200 and "swagger" in enc.get("/docs").text.lower()
    e, d = enc.get("/openapi.json").json(), dec.get("/openapi.json").json()
    base = {"/healthz", "/readyz", "/metrics", "/v1/model", "/v1/models"}
    drawing = {"/v1/sample", "/v1/interpolate"}  # the receiver draws alone (services/decoder/draw.py)
    assert set(e["paths"]) == base | {"/v1/encode"} and set(d["paths"]) == base | {"/v1/decode"} | drawing
    enc_body = e["paths"]["/v1/encode"]["post"]["requestBody"]["content"]
    assert set(enc_body) == {"application/json", "multipart/form-data", OCTET, "image/png", "image/jpeg", "image/webp"}
    assert set(enc_body["application/json"]["schema"]["properties"]) == {"images", "pixels"}
    dec_body = d["paths"]["/v1/decode"]["post"]["requestBody"]["content"]
    assert set(dec_body["application/json"]["schema"]["properties"]) >= {"fingerprint", "format", "shape", "codes"}
    dec_ok = d["paths"]["/v1/decode"]["post"]["responses"]["200"]["content"]
    assert set(dec_ok) == {"application/json", "image/png", OCTET}
    assert "409" in d["paths"]["/v1/decode"]["post"]["responses"]
    for spec in (e, d):
        assert {"EncodeResponse", "DecodeResponse"} & set(spec["components"]["schemas"])
        assert "ProblemDetails" in spec["components"]["schemas"]
        for path, ops in spec["paths"].items():
            for op in ops.values():
                assert op.get("summary") and op.get("description"), f"{path} has no docstring"
                for status, response in op["responses"].items():
                    if status[0] in "45":  # errors are documented as what they are sent as
                        assert set(response["content"]) == {"application/problem+json"}, (path, status)

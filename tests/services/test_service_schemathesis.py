"""Schema and behaviour agree: a bounded schemathesis run against each live service finds no server error
and no conformance failure, with and without a token; and the fixes it led to, checked one by one."""

from __future__ import annotations

import json

import pytest
from service_helpers import TOKEN, assert_problem, png

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency: pip install -e '.[dev]'")
from schemathesis.engine import events, from_schema  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MAX_EXAMPLES = 25  # per operation and phase: about 5 to 20 s a service here

# Refusals of a schema-valid request that JSON Schema cannot rule out: a PNG that does not decode, a code
# whose length is wrong for its format and shape, codes of another model (fingerprint, shape, a format it
# does not offer). Each is a documented 4xx naming the problem; a refusal for any other reason (the
# body's shape: invalid-request, no-images, empty-body, ...) means the schema promised too much.
CONTENT_PROBLEMS = {"bad-image", "bad-codes", "undecodable-code", "bad-code-values", "wrong-code-shape",
                    "unsupported-format", "fingerprint-mismatch"}
# And what the running service decides, which one schema for every model and setting cannot say: a model
# without a prior to sample from (409), more images or steps than its MAX_IMAGES (413).
SERVICE_PROBLEMS = {409: {"no-prior"}, 413: {"too-many-images", "too-many-steps"}}


def _problem_slug(content: bytes) -> str | None:
    try:
        return json.loads(content)["type"].rsplit(":", 1)[-1]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def schema_valid_request_accepted(ctx, response, case):
    """schemathesis's positive_data_acceptance, but a schema-valid request may be refused for its content
    (CONTENT_PROBLEMS) or its credentials (401), never for what the schema describes."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code < 400:
        return None
    if response.status_code >= 500 or response.status_code == 401:
        return None  # server errors have their own check; credentials are not the schema's to promise
    slug = _problem_slug(response.content)
    if response.status_code in (400, 409, 422) and slug in CONTENT_PROBLEMS:
        return None
    if slug in SERVICE_PROBLEMS.get(response.status_code, ()):
        return None
    raise AssertionError(f"a schema-valid request was refused: {response.status_code} {slug}")


def run_schemathesis(url: str, token: str | None = None) -> tuple[list[str], int]:
    """Every phase schemathesis runs by default (examples, coverage, fuzzing), bounded; (failures, scenarios)."""
    schemathesis.check(schema_valid_request_accepted)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # deterministic: the same examples on every run, so CI checks what was checked here, never a new draw
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])  # replaced by the above
    if token:
        schema.config.update(headers={"Authorization": f"Bearer {token}"})
    failures, scenarios = [], 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            rec = event.recorder
            for case_id, checks in rec.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        answer = rec.interactions.get(case_id)
                        status = answer.response.status_code if answer and answer.response else "no answer"
                        failures.append(f"{rec.label}: {check.name}: {check.failure_info.failure.title}"
                                        f" -> {status}\n  {check.failure_info.code_sample[:400]}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis could not run: {event}")
    return sorted(set(failures)), scenarios


@pytest.fixture(scope="module")
def rd64_pair(weights_dir):
    """An rd64 pair: its codes are entropy coded (format rc), a path the compact32 services never take."""
    from aelink.client import LocalService

    if not (weights_dir / "rd64" / "decoder.safetensors").is_file():
        pytest.skip(f"no rd64 weights in {weights_dir}")
    settings = {"MODEL": "rd64", "WEIGHTS_DIR": str(weights_dir), "THREADS": "1"}
    pair = {h: LocalService(h, env={f"AELINK_{h.upper()}_{k}": v for k, v in settings.items()})
            for h in ("encoder", "decoder")}
    try:
        for svc in pair.values():
            svc.start()
        for svc in pair.values():
            svc.wait_ready(timeout=90)
        yield pair
    finally:
        for svc in pair.values():
            svc.stop()


@pytest.mark.parametrize("which", ["encoder", "decoder", "guarded", "rd64 encoder", "rd64 decoder"])
def test_schemathesis_finds_nothing(request, services, which):
    if which.startswith("rd64"):
        svc = request.getfixturevalue("rd64_pair")[which.split()[1]]
    else:
        svc = getattr(services, which)
    failures, scenarios = run_schemathesis(svc.url, TOKEN if which == "guarded" else None)
    assert scenarios >= 6, f"schemathesis ran only {scenarios} scenarios"
    assert not failures, "\n".join(failures)


def test_the_bearer_scheme_is_declared_only_with_a_token(enc, services):
    import httpx

    open_doc = enc.get("/openapi.json").json()
    assert "securitySchemes" not in open_doc.get("components", {})
    assert all("security" not in op for ops in open_doc["paths"].values() for op in ops.values())
    guarded = httpx.get(f"{services.guarded.url}/openapi.json", timeout=10).json()
    assert guarded["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, ops in guarded["paths"].items():
        for op in ops.values():
            assert ("security" in op) == path.startswith("/v1/"), path
            if path.startswith("/v1/"):
                assert "401" in op["responses"], path


def test_the_encode_schema_asks_for_exactly_one_of_images_or_pixels(enc):
    body = enc.get("/openapi.json").json()["paths"]["/v1/encode"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert schema["oneOf"] == [{"required": ["images"]}, {"required": ["pixels"]}]
    assert schema["properties"]["images"]["minItems"] == 1
    assert_problem(enc.post("/v1/encode", json={}), 422, "exactly one")
    assert_problem(enc.post("/v1/encode", json={"images": None, "pixels": [[[0] * 28] * 28]}), 422, "exactly one")
    assert enc.post("/v1/encode", json={"pixels": [[[0] * 28] * 28]}).status_code == 200


@pytest.mark.parametrize("files", [257, 300])
def test_too_many_files_in_a_multipart_upload_is_413(enc, digits, files):
    one = png(digits[0])
    r = enc.post("/v1/encode", files=[("file", (f"{i}.png", one, "image/png")) for i in range(files)])
    assert_problem(r, 413, "256")
    ok = enc.post("/v1/encode", files=[("file", (f"{i}.png", one, "image/png")) for i in range(256)])
    assert ok.status_code == 200 and ok.json()["count"] == 256

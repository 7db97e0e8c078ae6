"""Every curl example in the README runs against the live services, and every route is documented."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from service_helpers import png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
DOC = Path(__file__).resolve().parents[2] / "README.md"
PORTS = {"8001": "encoder", "8002": "decoder"}
URL = re.compile(r"http://localhost:(800[12])(/[^\s'\"?]*)")


def curl_examples() -> list[str]:
    """The lines of the doc's bash blocks that run curl (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.search(r"(^|\| )curl ", line)]


EXAMPLES = curl_examples()


def test_the_doc_has_curl_examples_for_both_services():
    assert len(EXAMPLES) >= 15
    assert {port for ex in EXAMPLES for port, _ in URL.findall(ex)} == set(PORTS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("curl")
    (d / "digit.png").write_bytes(png(digits[0]))
    (d / "digit2.png").write_bytes(png(digits[1]))
    # a "photographed" digit: dark ink on light paper, 200x200, as a JPEG (the encoder fits it)
    photo = Image.fromarray(255 - digits[2]).resize((200, 200), Image.BILINEAR)
    photo.convert("RGB").save(d / "photo.jpg", quality=85)
    return d


@pytest.fixture(scope="module")
def vae_decoder(weights_dir):
    """A decoder serving vae32, for the examples of /v1/sample (the session's compact32 has no prior)."""
    from aelink.client import LocalService

    service = LocalService("decoder", env={"AELINK_DECODER_MODEL": "vae32", "AELINK_DECODER_THREADS": "1",
                                           "AELINK_DECODER_WEIGHTS_DIR": str(weights_dir)}).start()
    try:
        yield service.wait_ready(timeout=90)
    finally:
        service.stop()


@pytest.mark.parametrize("example", EXAMPLES)
def test_curl_example_runs(services, workdir, example, request):
    urls = {"encoder": services.encoder.url, "decoder": services.decoder.url}
    if "/v1/sample" in example:  # drawing from a prior needs a vae
        urls["decoder"] = request.getfixturevalue("vae_decoder").url
    command = re.sub(r"http://localhost:(800[12])", lambda m: urls[PORTS[m.group(1)]], example)
    # Fail on an HTTP error as well as on a transport error, and keep the output quiet.
    command = re.sub(r"(^|\| )curl ", r"\1curl -sS --fail-with-body ", command)
    r = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=workdir, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "AELINK_TOKEN": "unused-by-open-services"})
    assert r.returncode == 0, f"{example}\n{r.stdout[:500]}\n{r.stderr[:500]}"
    out = re.search(r"-o (\S+)", example)
    if out and out.group(1) != "/dev/null":
        assert (workdir / out.group(1)).stat().st_size > 0
    elif not out:
        assert r.stdout.strip()


def test_documented_paths_exist_and_every_route_is_documented(enc, dec):
    paths = {"encoder": set(enc.get("/openapi.json").json()["paths"]) | {"/docs", "/openapi.json"},
             "decoder": set(dec.get("/openapi.json").json()["paths"]) | {"/docs", "/openapi.json"}}
    used = {"encoder": set(), "decoder": set()}
    for example in EXAMPLES:
        for port, path in URL.findall(example):
            assert path in paths[PORTS[port]], f"{example}: no route {path} on the {PORTS[port]}"
            used[PORTS[port]].add(path)
    text = DOC.read_text()
    for half, routes in paths.items():
        for route in routes - {"/openapi.json"}:
            assert f"`GET {route}`" in text or f"`POST {route}`" in text, f"{half} route {route} is not in the doc"
    assert used["encoder"] >= {"/v1/encode", "/v1/model"} and used["decoder"] >= {"/v1/decode", "/v1/models"}

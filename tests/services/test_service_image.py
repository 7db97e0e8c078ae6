"""Each service image proven by running its contents: its file tree is assembled from services/Dockerfile
(the files its COPY lines name, for that HALF), the service starts from that tree alone with the image's
environment and command, and a digit goes through both; each tree holds only its own half."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest
from dockerfile import ROOT, read_image
from service_helpers import OCTET

from aelink.client import LocalService, free_port
from shared.codec.config import PRESETS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
HALVES = ("encoder", "decoder")
OTHER = {"encoder": "decoder", "decoder": "encoder"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, tuple[object, Path]]:
    """Each half's image: (the parsed Dockerfile, its working directory assembled on disk)."""
    out = {}
    for half in HALVES:
        image = read_image(half)
        out[half] = (image, image.assemble(tmp_path_factory.mktemp(f"image-{half}")))
    return out


def tree_env(image, **extra: str) -> dict[str, str]:
    """The image's environment, with Python's site machinery off (-S) and only the installed
    dependencies on the path: the project's own packages can come from the tree alone."""
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **image.env,
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(site)), **extra}


@pytest.mark.parametrize("half", HALVES)
def test_a_tree_holds_its_half_and_nothing_of_the_other_or_the_tooling(trees, half):
    image, _ = trees[half]
    paths = set(image.files)
    other = OTHER[half]
    assert f"/app/shared/codec/{half}.py" in paths and f"/app/services/{half}/main.py" in paths
    assert not [p for p in paths if f"/{other}" in p or p.endswith(f"{other}.safetensors")]
    assert not [p for p in paths if p.startswith(("/app/aelink", "/app/tests"))]
    shipped = [m for m in PRESETS if (ROOT / "weights" / m / f"{half}.safetensors").is_file()]
    assert sorted(p for p in paths if p.endswith(".safetensors")) == sorted(
        f"/app/weights/{m}/{half}.safetensors" for m in shipped)
    assert image.user != "root" and image.args["BASE_IMAGE"].startswith("python:3.11")


def test_the_images_install_only_what_serving_needs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serving = " ".join(project["dependencies"])
    for name in ("tqdm", "matplotlib", "pytorch-msssim", "pytest"):
        assert name not in serving  # training, benchmark and test tools are extras
    for half in HALVES:
        image = read_image(half)
        assert image.pip[0] == "pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL}"
        assert "['project']['dependencies']" in image.pip[1] and "pip install -r" in image.pip[1]
        assert len(image.pip) == 2  # and nothing else: the project itself is not pip-installed


def test_nothing_outside_the_tree_supplies_the_project(trees):
    """The isolation the next test relies on: with -S and the dependencies' path, the project's
    packages resolve to the tree (and aelink, absent from it, to nothing)."""
    image, workdir = trees["encoder"]
    probe = ("import importlib.util as u, shared; print(shared.__file__);"
             " print(u.find_spec('aelink'), u.find_spec('services.decoder'))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=workdir, env=tree_env(image),
                         capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert out[0].startswith(str(workdir)) and out[1] == "None None"


@pytest.mark.parametrize("model", ["compact32", "rd64"])
def test_a_digit_goes_through_services_started_from_the_trees(trees, digits, model):
    services = {}
    try:
        for half in HALVES:
            image, workdir = trees[half]
            assert image.cmd == ["python", "-m", "services"]
            port = free_port()  # on loopback; an image listens on 0.0.0.0 and its port is published
            prefix = f"AELINK_{half.upper()}_"
            env = tree_env(image, **{prefix + "HOST": "127.0.0.1", prefix + "PORT": str(port),
                                     prefix + "MODEL": model})
            svc = LocalService(half, env=env, port=port, command=[sys.executable, "-S", *image.cmd[1:]],
                               inherit_env=False)  # exactly the image's environment, not this process's
            services[half] = svc
            svc.start(cwd=workdir, flags=False)
        for half, svc in services.items():
            svc.wait_ready(timeout=120)
            image, workdir = trees[half]
            check = subprocess.run([sys.executable, "-S", *image.healthcheck[1:]], cwd=workdir, env=svc.env,
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stderr  # the image's HEALTHCHECK says ready
        raw = np.ascontiguousarray(digits[:4], np.uint8).tobytes()
        codes = httpx.post(f"{services['encoder'].url}/v1/encode", content=raw, timeout=60,
                           headers={"Content-Type": OCTET, "Accept": OCTET})
        assert codes.status_code == 200, codes.text
        images = httpx.post(f"{services['decoder'].url}/v1/decode", content=codes.content, timeout=60,
                            headers={"Content-Type": OCTET, "Accept": OCTET})
        assert images.status_code == 200, images.text
        recon = np.frombuffer(images.content, np.uint8).reshape(-1, 28, 28).astype(float) / 255
        mse = ((recon - digits[:4] / 255) ** 2).mean()
        assert 10 * np.log10(1 / mse) > 20  # a real reconstruction, not noise
    finally:
        for svc in services.values():
            svc.stop()

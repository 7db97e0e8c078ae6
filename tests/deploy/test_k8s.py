"""The Kubernetes manifests in deploy/: each overlay renders with `kubectl kustomize`, validates against the
Kubernetes schemas offline (kubernetes-validate), and says what the services need to run well on a cluster."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from services.decoder.settings import DecoderSettings
from services.encoder.settings import EncoderSettings
from shared.codec.config import PRESETS
from shared.service import health, metrics

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "deploy" / "overlays").iterdir() if p.is_dir())
HALVES = {"encoder": (8001, EncoderSettings), "decoder": (8002, DecoderSettings)}
# The oldest Kubernetes still widely run, and the newest the schemas know.
SCHEMA_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
MI = 2**20
MEMORY_PER_PROCESS = 384 * MI  # a loaded worker holds ~300 MiB, and so does the supervisor of several
ROUTES = {r.path for r in [*health.router.routes, *metrics.router.routes]}


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/ (it bundles kustomize)"
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request) -> dict[tuple[str, str], dict]:
    docs = render(request.param)
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(by_key) == len(docs), "two objects of one kind share a name"
    return by_key


def one(objects: dict, kind: str, name: str | None = None) -> dict:
    found = [d for (k, n), d in objects.items() if k == kind and (name is None or n == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: dict, half: str) -> dict:
    (c,) = one(objects, "Deployment", f"aelink-{half}")["spec"]["template"]["spec"]["containers"]
    return c


def env(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def setting(c: dict, half: str, name: str) -> str:
    """A plain setting's value in the container, or the service's default when the manifest leaves it out."""
    e = env(c).get(f"AELINK_{half.upper()}_{name}")
    assert e is not None or name != "WORKERS", f"set {name} explicitly: the pod's resources depend on it"
    return e["value"] if e is not None else str(HALVES[half][1].model_fields[name.lower()].default)


def quantity(q: str | int) -> float:
    """A Kubernetes quantity ("2", "500m", "640Mi", "1Gi") as a number of cores or bytes."""
    m = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi)?", str(q))
    assert m, f"unexpected quantity {q!r}"
    return float(m[1]) * {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[m[2]]


def test_dev_and_prod_overlays_exist():
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(objects, version):
    for (kind, name), doc in objects.items():
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: unknown fields fail too
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{kind}/{name} against Kubernetes {version}: {e.message} at {list(e.absolute_path)}")


def test_every_object_lives_in_the_overlays_namespace(objects):
    ns = one(objects, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for (kind, name), doc in objects.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == ns["metadata"]["name"], f"{kind}/{name}"


@pytest.mark.parametrize("half", HALVES)
def test_each_half_runs_its_own_image_and_only_real_settings(objects, half):
    port, settings = HALVES[half]
    c = container(objects, half)
    assert c["name"] == half
    assert c["image"].split("/")[-1].split(":")[0] == f"aelink-{half}", c["image"]
    prefix = f"AELINK_{half.upper()}_"
    for name in env(c):  # every variable is a real setting of this half (a typo would be ignored)
        assert name.startswith(prefix) and name[len(prefix):].lower() in settings.model_fields, name
    assert setting(c, half, "HOST") == "0.0.0.0" and setting(c, half, "PORT") == str(port)
    assert c["ports"] == [{"name": "http", "containerPort": port}]
    svc = one(objects, "Service", f"aelink-{half}")
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
    pod_labels = one(objects, "Deployment", f"aelink-{half}")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == half  # never the other half's pods


@pytest.mark.parametrize("half", HALVES)
def test_probes_watch_the_real_health_routes(objects, half):
    c = container(objects, half)
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"  # answers once the weights are loaded
    for probe in probes.values():
        assert probe["path"] in ROUTES and probe["port"] == "http"
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 60, "too little time to load the weights"


@pytest.mark.parametrize("half", HALVES)
def test_resources_match_threads_times_workers(objects, half):
    c = container(objects, half)
    threads, workers = int(setting(c, half, "THREADS")), int(setting(c, half, "WORKERS"))
    req, lim = c["resources"]["requests"], c["resources"]["limits"]
    assert quantity(lim["cpu"]) == threads * workers == quantity(req["cpu"])
    assert quantity(lim["memory"]) >= MEMORY_PER_PROCESS * (workers + 1)
    assert quantity(req["memory"]) == quantity(lim["memory"])


@pytest.mark.parametrize("half", HALVES)
def test_the_autoscaler_and_the_disruption_budget_target_the_half(objects, half):
    deployment = one(objects, "Deployment", f"aelink-{half}")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(objects, "HorizontalPodAutoscaler", f"aelink-{half}")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": f"aelink-{half}"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    pdb = one(objects, "PodDisruptionBudget", f"aelink-{half}")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1  # minAvailable would block node drains at one replica


@pytest.mark.parametrize("half", HALVES)
def test_the_token_comes_from_a_secret_and_the_model_from_a_configmap(objects, half):
    e = env(container(objects, half))
    ref = e[f"AELINK_{half.upper()}_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == half and ref.get("optional") is not True
    secrets = [d for (k, _), d in objects.items() if k == "Secret"]
    if secrets:  # only dev generates one, with an obvious value; prod expects a Secret made by hand
        (secret,) = secrets
        assert secret["metadata"]["name"] == ref["name"]
        assert base64.b64decode(secret["data"][half]).decode().startswith("dev-"), "an obvious dev value"
        assert one(objects, "Namespace")["metadata"]["name"].endswith("-dev")
    else:
        assert ref["name"] == "aelink-tokens"
    model = e[f"AELINK_{half.upper()}_MODEL"]["valueFrom"]["configMapKeyRef"]
    config = one(objects, "ConfigMap", model["name"])
    name = config["data"][model["key"]]
    assert name in PRESETS and (ROOT / "weights" / name / f"{half}.safetensors").is_file()


def test_both_halves_read_one_model_name(objects):
    refs = [env(container(objects, h))[f"AELINK_{h.upper()}_MODEL"]["valueFrom"] for h in HALVES]
    assert refs[0] == refs[1], "the sender and the receiver must serve the same pair"


@pytest.mark.parametrize("half", HALVES)
def test_non_root_read_only_root_and_a_tmp_emptydir(objects, half):
    pod = one(objects, "Deployment", f"aelink-{half}")["spec"]["template"]["spec"]
    c = container(objects, half)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


@pytest.mark.parametrize("half", HALVES)
def test_the_grace_period_covers_the_drain_and_the_in_flight_requests(objects, half):
    pod = one(objects, "Deployment", f"aelink-{half}")["spec"]["template"]["spec"]
    c = container(objects, half)
    drain = float(setting(c, half, "SHUTDOWN_DRAIN_SECONDS"))
    timeout = float(setting(c, half, "SHUTDOWN_TIMEOUT_SECONDS"))
    period = c["readinessProbe"]["periodSeconds"] * c["readinessProbe"]["failureThreshold"]
    assert drain >= period, "the drain must outlast a readiness period, so the probe sees the 503"
    assert pod["terminationGracePeriodSeconds"] > drain + timeout


@pytest.mark.parametrize("half", HALVES)
def test_prometheus_scrapes_the_metrics_route(objects, half):
    template = one(objects, "Deployment", f"aelink-{half}")["spec"]["template"]
    notes = template["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(HALVES[half][0])
    assert notes["prometheus.io/path"] == "/metrics" and "/metrics" in ROUTES

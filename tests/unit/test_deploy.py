"""deploy/, the service Dockerfiles and the topic lists: every manifest parses,
every service has a probed Deployment and a Service, Triton gets a GPU, and the
topics created by compose and Kubernetes are exactly topics.all_topics()."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline_core.kafka import topics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "k8s" / "base"

#: Loopline service -> (HTTP port, gRPC port or None), DESIGN §2.
SERVICES: dict[str, tuple[int, int | None]] = {
    "serving-gateway": (8080, 9080),
    "registry": (8081, 9081),
    "feedback-collector": (8082, 9082),
    "drift-detector": (8083, None),
    "trainer": (8084, 9084),
}


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in _yaml_files():
        if BASE not in path.parents or path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"{key} defined twice"
            docs[key] = doc
    return docs


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_every_yaml_file_under_deploy_parses() -> None:
    files = _yaml_files()
    assert DEPLOY / "otel-collector.yaml" in files
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), f"{path} has an empty or non-mapping document"


def test_kustomization_lists_exactly_the_base_files() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_a_probed_deployment_and_a_service(
    manifests: dict[tuple[str, str], dict[str, Any]], name: str
) -> None:
    http, grpc = SERVICES[name]
    deployment = manifests[("Deployment", name)]
    container = _container(deployment)
    assert container["image"] == f"loopline/{name}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == ({"http": http, "grpc": grpc} if grpc else {"http": http})
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    env = _env(container)
    assert env["LOOPLINE_SERVICE_NAME"] == name
    assert env["LOOPLINE_HTTP_PORT"] == str(http)
    assert env["LOOPLINE_GRPC_PORT"] == str(grpc or 0)
    assert {"configMapRef": {"name": "loopline-shared"}} in container["envFrom"]

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = manifests[("Service", name)]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_ports = {p["port"] for p in service["spec"]["ports"]}
    assert service_ports == {http} | ({grpc} if grpc else set())


def test_shared_config_matches_the_compose_environment(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    compose_env = compose["x-loopline-env"]
    shared = manifests[("ConfigMap", "loopline-shared")]["data"]
    # The DSN carries a password, so Kubernetes keeps it in a Secret instead.
    assert set(shared) == set(compose_env) - {"LOOPLINE_POSTGRES__DSN"}
    assert "dsn" in manifests[("Secret", "loopline-postgres")]["stringData"]


def test_triton_gets_a_gpu_and_explicit_model_control(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    container = _container(manifests[("Deployment", "triton")])
    assert container["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert "--model-control-mode=explicit" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    gateway_mounts = {m["mountPath"]: m["name"] for m in _container(manifests[("Deployment", "serving-gateway")])["volumeMounts"]}
    assert mounts["/models"] == gateway_mounts["/models"] == "model-repository"
    assert ("PersistentVolumeClaim", "model-repository") in manifests
    assert ("Service", "triton") in manifests


@pytest.mark.parametrize("target", ["serving-gateway", "triton"])
def test_gateway_and_triton_autoscale(manifests: dict[tuple[str, str], dict[str, Any]], target: str) -> None:
    hpa = manifests[("HorizontalPodAutoscaler", target)]
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", target)
    assert ("Deployment", target) in manifests
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1


# --- topics ------------------------------------------------------------------


def _parse_topics(text: str) -> dict[str, tuple[int, dict[str, str]]]:
    parsed: dict[str, tuple[int, dict[str, str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, partitions, *configs = line.split()
        assert name not in parsed, f"{name} listed twice"
        parsed[name] = (int(partitions), dict(c.split("=", 1) for c in configs))
    return parsed


def _catalogue() -> dict[str, tuple[int, dict[str, str]]]:
    return {spec.name: (spec.partitions, dict(spec.config)) for spec in topics.all_topics()}


def test_compose_topic_init_creates_exactly_the_catalogue() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    init = compose["services"]["kafka-topics-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "kafka-topics.sh" in " ".join(init["command"])
    assert _parse_topics(init["environment"]["TOPICS"]) == _catalogue()


def test_kubernetes_topic_job_creates_exactly_the_catalogue(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert _parse_topics(manifests[("ConfigMap", "kafka-topics")]["data"]["TOPICS"]) == _catalogue()
    job = _container(
        {"spec": {"template": manifests[("Job", "kafka-topics")]["spec"]["template"]}}
    )
    assert {"configMapRef": {"name": "kafka-topics"}} in job["envFrom"]


# --- images ------------------------------------------------------------------


def _lock() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}


def _closure(lock: dict[str, dict[str, Any]], root: str) -> set[str]:
    """Every locked package that installing ``root`` can pull in (extras included)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = lock[name]
        for dep in package.get("dependencies", []):
            todo.append(dep["name"])
            for extra in dep.get("extra", []):
                todo += [d["name"] for d in lock[dep["name"]].get("optional-dependencies", {}).get(extra, [])]
    return seen


def _workspace_members() -> list[Path]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = [p for pattern in root["tool"]["uv"]["workspace"]["members"] for p in REPO.glob(pattern)]
    return sorted(p.relative_to(REPO) for p in members if (p / "pyproject.toml").is_file())


def _instructions(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dockerfile_builds_only_its_service(name: str) -> None:
    http, grpc = SERVICES[name]
    lines = _instructions(REPO / "services" / name / "Dockerfile")
    text = "\n".join(lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    assert re.search(r"pip install .*\buv\b", text)
    assert f"uv sync --frozen --no-dev --package loopline-{name}" in text

    copies = {src for line in lines if line.startswith("COPY") and "--from" not in line for src in line.split()[1:-1]}
    assert {"pyproject.toml", "uv.lock"} <= copies
    for member in _workspace_members():
        assert f"{member}/pyproject.toml" in copies, f"uv needs {member}/pyproject.toml to read the lock"
    lock = _lock()
    needed = {pkg for pkg in _closure(lock, f"loopline-{name}") if "editable" in lock[pkg]["source"]}
    for pkg in needed:
        assert lock[pkg]["source"]["editable"] in copies, f"{pkg} source is not copied"

    user = next(line.split()[1] for line in reversed(lines) if line.startswith("USER"))
    assert user.split(":")[0] not in {"root", "0"}
    exposed = {int(p) for line in lines if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert exposed == {http} | ({grpc} if grpc else set())
    assert any(line.startswith("HEALTHCHECK") and "/readyz" in line for line in lines)

    scripts = tomllib.loads((REPO / "services" / name / "pyproject.toml").read_text())["project"]["scripts"]
    assert lines[-1] == f'CMD ["loopline-{name}"]'
    assert f"loopline-{name}" in scripts


def test_gateway_image_does_not_pull_torch_and_trainer_does() -> None:
    lock = _lock()
    assert "torch" not in _closure(lock, "loopline-serving-gateway")
    assert "torch" in _closure(lock, "loopline-trainer")


def test_every_caller_presents_a_key_the_registry_seeds(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    import json

    secret = manifests[("Secret", "loopline-api-keys")]["stringData"]
    seeds = json.loads(secret["auth-keys"])

    def env(name: str) -> dict[str, Any]:
        container = manifests[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e for e in container["env"]}

    assert env("registry")["LOOPLINE_AUTH__KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "auth-keys"
    for name in ("trainer", "serving-gateway", "feedback-collector", "drift-detector"):
        ref = env(name)["LOOPLINE_ENDPOINTS__REGISTRY_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "loopline-api-keys" and seeds[name]["secret"] == secret[ref["key"]], name
    assert env("drift-detector")["LOOPLINE_CHECKPOINT_KEY"]["valueFrom"]["secretKeyRef"]["key"] in secret

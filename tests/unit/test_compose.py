"""docker-compose.yml: Debian's docker-compose accepts it, and it has the topology
of the local stack (DESIGN §7) with the official images."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"

#: Loopline service -> (HTTP port, gRPC port or None), DESIGN §2.
SERVICES: dict[str, tuple[int, int | None]] = {
    "serving-gateway": (8080, 9080),
    "registry": (8081, 9081),
    "feedback-collector": (8082, 9082),
    "drift-detector": (8083, None),
    "trainer": (8084, 9084),
}
INFRA = {"kafka", "kafka-topics-init", "postgres", "triton", "otel-collector", "jaeger", "minio", "minio-bucket-init"}
SHARED_ENV = {
    "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
    "LOOPLINE_TRITON__HTTP_URL": "triton:8000",
    "LOOPLINE_TRITON__GRPC_URL": "triton:8001",
    "LOOPLINE_TRITON__MODEL_REPOSITORY": "/models",
    "LOOPLINE_ENDPOINTS__REGISTRY": "registry:9081",
    "LOOPLINE_ENDPOINTS__TRAINER": "trainer:9084",
    "LOOPLINE_ENDPOINTS__FEEDBACK_COLLECTOR": "feedback-collector:9082",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4317",
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _published(service: dict[str, Any]) -> set[str]:
    return {str(p) for p in service.get("ports", [])}


def test_debian_docker_compose_accepts_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed; `make bootstrap` installs it (Debian package docker-compose)")
    result = subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"docker-compose config rejected {COMPOSE.name}:\n{result.stderr}"


def test_topology_has_every_part(services: dict[str, dict[str, Any]]) -> None:
    missing = (set(SERVICES) | INFRA) - set(services)
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one")


def test_kafka_is_a_kraft_node_with_a_plaintext_listener_for_containers(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in services["kafka"]


def test_triton_has_a_gpu_explicit_control_and_the_gateways_repository(services: dict[str, dict[str, Any]]) -> None:
    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "--model-control-mode=explicit" in triton["command"]
    assert {"8000:8000", "8001:8001", "8002:8002"} <= _published(triton)

    def repository_volume(service: dict[str, Any]) -> str:
        (volume,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == "/models"]
        return volume

    assert repository_volume(triton) == repository_volume(services["serving-gateway"])


def test_traces_go_through_the_collector_to_jaeger(services: dict[str, dict[str, Any]]) -> None:
    (mount,) = services["otel-collector"]["volumes"]
    config_path = REPO / mount.split(":")[0]
    assert config_path == REPO / "deploy" / "otel-collector.yaml"
    config = yaml.safe_load(config_path.read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert "otlp" in pipeline["receivers"]
    jaeger_exporters = [e for e in pipeline["exporters"] if config["exporters"][e].get("endpoint") == "jaeger:4317"]
    assert jaeger_exporters, "no trace exporter points at jaeger:4317"
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "16686:16686" in _published(services["jaeger"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_loopline_service_is_built_configured_and_health_checked(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    http, grpc = SERVICES[name]
    service = services[name]
    assert service["build"] == {"context": ".", "dockerfile": f"services/{name}/Dockerfile"}
    assert (REPO / service["build"]["dockerfile"]).is_file()

    env = service["environment"]
    assert env["LOOPLINE_SERVICE_NAME"] == name
    assert env["OTEL_SERVICE_NAME"] == name
    assert env["LOOPLINE_HTTP_PORT"] == str(http)
    assert env["LOOPLINE_GRPC_PORT"] == str(grpc or 0)
    assert env["LOOPLINE_HOST"] == "0.0.0.0", "inside a container the service must listen beyond loopback"
    assert env["LOOPLINE_POSTGRES__DSN"].startswith("postgresql://")
    assert "@postgres:5432/" in env["LOOPLINE_POSTGRES__DSN"]
    for key, value in SHARED_ENV.items():
        assert env.get(key) == value, f"{name}: {key}"

    expected_ports = {f"{http}:{http}"} | ({f"{grpc}:{grpc}"} if grpc else set())
    assert _published(service) == expected_ports

    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{http}/readyz" in probe


def test_the_registry_keeps_artifacts_in_a_bucket_that_minio_init_creates(services: dict[str, dict[str, Any]]) -> None:
    minio, init, registry = services["minio"], services["minio-bucket-init"], services["registry"]
    env = registry["environment"]
    assert env["LOOPLINE_ARTIFACTS__BACKEND"] == "s3"
    assert env["LOOPLINE_ARTIFACTS__ENDPOINT_URL"] == "http://minio:9000"
    assert "9000:9000" in _published(minio)
    assert env["LOOPLINE_ARTIFACTS__BUCKET"] == init["environment"]["BUCKET"]
    assert f'"loopline/$$BUCKET"' in init["command"][0] and "--ignore-existing" in init["command"][0]
    assert env["LOOPLINE_ARTIFACTS__ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["LOOPLINE_ARTIFACTS__SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    assert init["image"] == minio["image"], "the init step uses the mc client shipped in the MinIO image"
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert registry["depends_on"]["minio-bucket-init"]["condition"] == "service_completed_successfully"


def test_endpoints_point_at_the_services_grpc_ports() -> None:
    for key, value in SHARED_ENV.items():
        if key.startswith("LOOPLINE_ENDPOINTS__"):
            host, port = value.split(":")
            assert SERVICES[host][1] == int(port), key


def test_depends_on_conditions_can_be_met(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is a one-shot and must not restart"
    for name in SERVICES:
        conditions = {spec["condition"] for spec in services[name]["depends_on"].values()}
        assert "service_completed_successfully" in conditions, f"{name} must wait for the topics to exist"


def test_every_caller_presents_a_key_the_registry_seeds(services: dict[str, dict[str, Any]]) -> None:
    """With the variables unset, compose falls back to dev-only defaults; they must agree."""
    import json
    import re

    def resolved(value: str) -> str:  # ${VAR:-default} as compose resolves it with VAR unset
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)

    seeds = json.loads(resolved(services["registry"]["environment"]["LOOPLINE_AUTH__KEYS"]))
    for name in ("trainer", "serving-gateway", "feedback-collector", "drift-detector"):
        key = resolved(services[name]["environment"]["LOOPLINE_ENDPOINTS__REGISTRY_API_KEY"])
        assert seeds[name]["secret"] == key and len(key) >= 16, name
    assert seeds["trainer"]["role"] == "trainer" and seeds["admin"]["role"] == "admin"
    assert len(resolved(services["drift-detector"]["environment"]["LOOPLINE_CHECKPOINT_KEY"])) >= 16

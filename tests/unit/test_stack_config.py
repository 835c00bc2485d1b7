"""Config generation and port resolution of the local stack (no process is started)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from loopline_cli.stack import PortInUse, Stack, StackConfig, StackError
from loopline_cli.stack.kafka import new_cluster_id, render_server_properties
from loopline_cli.stack.ports import DEFAULT_PORTS, env_var, port_in_use
from loopline_cli.stack.postgres import server_settings
from loopline_cli.stack.services import SERVICES, service_env


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_kafka_properties_fit_one_small_node() -> None:
    props = parse_properties(render_server_properties(19092, 19093, Path("/run/kafka/data"), auto_create_topics=False))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "offsets.topic.num.partitions",
        "transaction.state.log.num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.cleaner.dedupe.buffer.size"] == str(8 * 1024 * 1024)
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == "/run/kafka/data"


def test_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22 and cluster_id.replace("-", "").replace("_", "").isalnum()


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage would read '-t -xyz...' as an option: such ids are drawn again."""
    import uuid

    drawn = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])  # '-w...', then 'AAAA...'
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    assert new_cluster_id() == "A" * 22


def test_postgres_durability_follows_fsync() -> None:
    assert server_settings(5432, Path("/s"), fsync=False)["fsync"] == "off"
    durable = server_settings(5432, Path("/s"), fsync=True)
    assert (durable["fsync"], durable["synchronous_commit"], durable["listen_addresses"]) == ("on", "on", "127.0.0.1")


def test_ports_resolve_defaults_then_saved_then_env_then_flags(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"ports": {"kafka": 1111, "postgres": 2222}, "fsync": False}))
    env = {env_var("postgres"): "3333", env_var("triton-http"): "4444"}
    config = StackConfig.resolve(tmp_path, flags={"triton-http": 5555, "kafka": None}, env=env)
    assert config.port("kafka") == 1111
    assert config.port("postgres") == 3333
    assert config.port("triton-http") == 5555
    assert config.port("registry-grpc") == DEFAULT_PORTS["registry-grpc"]
    assert config.fsync is False


def test_a_bad_port_variable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="LOOPLINE_STACK_KAFKA_PORT"):
        StackConfig.resolve(tmp_path, env={"LOOPLINE_STACK_KAFKA_PORT": "ninety"})


def test_test_configs_get_distinct_ports(tmp_path: Path) -> None:
    ports = StackConfig.for_tests(tmp_path).ports
    assert len(set(ports.values())) == len(DEFAULT_PORTS)


def test_services_get_every_endpoint_through_loopline_variables(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    registry = next(spec for spec in SERVICES if spec.name == "registry")
    env = service_env(config, registry)
    assert env["LOOPLINE_HTTP_PORT"] == str(config.port("registry-http"))
    assert env["LOOPLINE_GRPC_PORT"] == str(config.port("registry-grpc"))
    assert env["LOOPLINE_KAFKA__BOOTSTRAP_SERVERS"] == config.kafka_bootstrap
    assert env["LOOPLINE_POSTGRES__DSN"] == f"postgresql://loopline@127.0.0.1:{config.port('postgres')}/loopline"
    assert env["LOOPLINE_TRITON__MODEL_REPOSITORY"] == str(tmp_path / "triton" / "models")
    assert env["LOOPLINE_ENDPOINTS__TRAINER"] == f"127.0.0.1:{config.port('trainer-grpc')}"
    assert env["LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR"] == str(tmp_path / "traces")
    assert env["OTEL_SERVICE_NAME"] == "registry"
    drift = service_env(config, next(spec for spec in SERVICES if not spec.grpc))
    assert drift["LOOPLINE_GRPC_PORT"] == "0"


def test_a_listening_port_is_seen_as_taken_and_named(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert port_in_use(taken)
        stack = Stack(StackConfig.for_tests(tmp_path).with_ports(postgres=taken))
        with pytest.raises(PortInUse) as caught:
            stack.preflight(stack.select("postgres"))
    assert f"port {taken} (postgres)" in str(caught.value)
    assert not port_in_use(taken)


def test_one_port_for_two_parts_is_refused(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    stack = Stack(config.with_ports(triton_http=config.port("kafka")))
    with pytest.raises(StackError, match="more than one part"):
        stack.preflight(stack.select("infra"))


def test_unknown_part_names_are_listed(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown part zookeeper"):
        Stack(StackConfig.for_tests(tmp_path)).select("kafka,zookeeper")


def test_every_service_gets_its_own_registry_key_and_the_registry_knows_them_all(tmp_path: Path) -> None:
    import json
    import stat

    from loopline_cli.stack.secrets import admin_key_file

    config = StackConfig.for_tests(tmp_path)
    envs = {spec.name: service_env(config, spec) for spec in SERVICES}
    provisioned = json.loads(envs["registry"]["LOOPLINE_AUTH__KEYS"])
    assert provisioned["trainer"]["role"] == "trainer"
    assert provisioned["serving-gateway"]["role"] == "reader"
    assert provisioned["admin"]["role"] == "admin"
    for name, env in envs.items():
        if name != "registry":
            assert env["LOOPLINE_ENDPOINTS__REGISTRY_API_KEY"] == provisioned[name]["secret"]
    assert len({entry["secret"] for entry in provisioned.values()}) == len(provisioned)
    admin = admin_key_file(tmp_path)
    assert admin.read_text().strip() == provisioned["admin"]["secret"]
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    # A second start keeps the same keys (services restarted alone still match the registry).
    assert json.loads(service_env(config, SERVICES[0])["LOOPLINE_AUTH__KEYS"]) == provisioned

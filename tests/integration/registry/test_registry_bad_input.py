"""Bad input against the running service on the real PostgreSQL: a clear 4xx or gRPC
status, and nothing written (every table and the artifact store are unchanged)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline.registry.v1 import registry_pb2 as pb
from loopline.registry.v1 import registry_pb2_grpc
from registry_it import KEYS, fresh_schema, settings, sha, torchscript

from loopline_registry.bootstrap import build

SCHEMA = "registry_it_bad_input"
TABLES = ("models", "model_versions", "artifacts", "aliases", "alias_history", "deployments", "deployment_history",
          "audit_log", "outbox", "idempotency_keys", "datasets", "dataset_versions", "training_runs", "api_keys")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-bad-input")


@pytest.fixture(scope="module")
async def service(postgres_dsn: str, kafka_bootstrap: str, root: Path) -> AsyncIterator[tuple[str, str]]:
    await fresh_schema(postgres_dsn, SCHEMA)
    config = settings(postgres_dsn, kafka_bootstrap, SCHEMA, root / "artifacts", http_port=_free_port(),
                      grpc_port=_free_port())
    host = build(config)
    task = asyncio.create_task(host.run())
    url = f"http://127.0.0.1:{config.http_port}"
    async with httpx.AsyncClient(base_url=url) as client, asyncio.timeout(60):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEYS['operator']}"}) as http:
        await http.post("/v1/models", json={"name": "known"})
        data = torchscript(0.1)
        sha256 = (await http.post("/v1/artifacts", content=data, headers={
            "X-Artifact-Format": "torchscript", "X-Artifact-Sha256": sha(data)})).json()["sha256"]
        await http.post("/v1/models/known/versions", json={"artifact_sha256": sha256})
        await http.put("/v1/models/known/deployment", json={"expected_revision": 0, "splits": [{"version": 1,
                                                                                                "weight": 1.0}]})
    yield url, f"127.0.0.1:{config.grpc_port}"
    host.request_stop()
    assert await task == 0


async def snapshot(postgres_dsn: str, root: Path) -> tuple[dict[str, int], list[str]]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.{t}") for t in TABLES}
    finally:
        await conn.close()
    return counts, sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
async def unchanged(postgres_dsn: str, root: Path, service: tuple[str, str]) -> AsyncIterator[None]:
    before = await snapshot(postgres_dsn, root)
    yield
    assert await snapshot(postgres_dsn, root) == before


def rest(url: str, role: str | None = "trainer") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEYS[role]}"} if role else {})


def upload(data: bytes, fmt: str = "torchscript", digest: str | None = None) -> dict[str, object]:
    return {"content": data, "headers": {"X-Artifact-Format": fmt, "X-Artifact-Sha256": digest or sha(data)}}


CASES: list[tuple[str, str, str, dict[str, object], int]] = [
    ("traversal name", "POST", "/v1/models", {"json": {"name": "../../etc"}}, 400),
    ("encoded traversal name", "POST", "/v1/models", {"json": {"name": "%2e%2e%2f"}}, 400),
    ("absolute path name", "POST", "/v1/models", {"json": {"name": "/etc/passwd"}}, 400),
    ("NUL in a name", "POST", "/v1/models", {"json": {"name": "a\x00b"}}, 400),
    ("NUL in a description", "POST", "/v1/models", {"json": {"name": "ok-name", "description": "x\x00"}}, 400),
    ("file:// artifact URI", "POST", "/v1/models/known/versions",
     {"json": {"artifact_uri": "file:///etc/passwd"}}, 400),
    ("relative artifact URI", "POST", "/v1/models/known/versions", {"json": {"artifact_uri": "../../x"}}, 400),
    ("encoded artifact URI", "POST", "/v1/models/known/versions", {"json": {"artifact_uri": "%2e%2e%2fx"}}, 400),
    ("absolute artifact URI", "POST", "/v1/models/known/versions", {"json": {"artifact_uri": "/etc/passwd"}}, 400),
    ("traversal in a path", "GET", "/v1/models/..%2F..%2Fetc/versions", {}, 404),
    ("traversal as a hash", "GET", "/v1/artifacts/..%2F..%2Fetc%2Fpasswd", {}, 404),
    ("oversized upload", "POST", "/v1/artifacts", upload(b"\x08" + b"1" * (1 << 20), "onnx"), 400),
    ("hash mismatch", "POST", "/v1/artifacts", upload(b"\x08\x07", "onnx", "0" * 64), 400),
    ("raw pickle", "POST", "/v1/artifacts", upload(b"\x80\x04\x95\x00\x00.", "torchscript"), 400),
    ("pickle format", "POST", "/v1/artifacts", upload(b"\x80\x04.", "pickle"), 400),
    ("unknown model", "POST", "/v1/models/unknown/versions", {"json": {"artifact_sha256": "0" * 64}}, 404),
    ("unknown artifact", "POST", "/v1/models/known/versions", {"json": {"artifact_sha256": "0" * 64}}, 404),
    ("stale revision", "PUT", "/v1/models/known/deployment",
     {"json": {"expected_revision": 0, "splits": [{"version": 1, "weight": 1.0}]}}, 409),
    ("weights not summing to 1", "PUT", "/v1/models/known/deployment",
     {"json": {"expected_revision": 1, "splits": [{"version": 1, "weight": 0.5}]}}, 400),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rest_bad_input_is_a_clear_client_error(service: tuple[str, str], unchanged: None, method: str,
                                                      path: str, kwargs: dict[str, object], status: int) -> None:
    async with rest(service[0]) as http:
        reply = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == status, reply.text
    if status != 404 or "artifacts" not in path:
        assert reply.json().get("message")


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("reader", 403)])
async def test_a_caller_without_the_role_writes_nothing(service: tuple[str, str], unchanged: None, role: str | None,
                                                        status: int) -> None:
    async with rest(service[0], role) as http:
        reply = await http.post("/v1/models", json={"name": "not-allowed"})
        assert reply.status_code == status
        assert ("role" if role else "missing API key") in reply.json()["message"]
        rollback = await http.post("/v1/models/known/rollback", json={"reason": "x"})
        assert rollback.status_code == status


def _uploads(data: bytes, digest: str, fmt: str = "torchscript") -> Iterator[pb.UploadArtifactRequest]:
    yield pb.UploadArtifactRequest(header=pb.ArtifactHeader(format=fmt, sha256=digest))
    for start in range(0, len(data), 1 << 16):
        yield pb.UploadArtifactRequest(chunk=data[start:start + (1 << 16)])


async def test_grpc_bad_input_gets_a_clear_status(service: tuple[str, str], unchanged: None) -> None:
    metadata = (("authorization", f"Bearer {KEYS['trainer']}"),)
    big = b"\x08" + b"2" * (1 << 20)
    split = models_pb2.TrafficSplit(version=1, weight=1.0, variant=common_pb2.VARIANT_CHAMPION)
    async with grpc.aio.insecure_channel(service[1]) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        calls = [
            (stub.CreateModel(pb.CreateModelRequest(name="../x"), metadata=metadata), "INVALID_ARGUMENT"),
            (stub.RegisterModelVersion(pb.RegisterModelVersionRequest(model="known", artifact_uri="file:///x"),
                                       metadata=metadata), "INVALID_ARGUMENT"),
            (stub.UploadArtifact(_uploads(big, sha(big), "onnx"), metadata=metadata), "INVALID_ARGUMENT"),
            (stub.UploadArtifact(_uploads(b"\x80\x05.", sha(b"\x80\x05.")), metadata=metadata), "INVALID_ARGUMENT"),
            (stub.GetModel(pb.GetModelRequest(name="unknown"), metadata=metadata), "NOT_FOUND"),
            (stub.SetDeployment(pb.SetDeploymentRequest(model="known", splits=[split]), metadata=metadata),
             "FAILED_PRECONDITION"),
            (stub.CreateModel(pb.CreateModelRequest(name="anon")), "UNAUTHENTICATED"),
            (stub.RollBack(pb.RollBackRequest(model="known", reason="x"), metadata=metadata), "PERMISSION_DENIED"),
        ]
        for call, expected in calls:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code().name == expected and error.value.details()

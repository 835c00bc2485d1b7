"""The REST edge over the real ServiceHost: auth, status codes, streaming uploads, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from registry_edge_host import KEYS, Running, running_registry
from registry_fakes import pickle_bytes, sha, torchscript_bytes

HOLDOUT = "ab" * 32


@pytest.fixture(scope="module")
async def registry() -> AsyncIterator[Running]:
    async with running_registry() as running:
        yield running


def client(registry: Running, role: str | None = "trainer") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {KEYS[role]}"} if role else {}
    return httpx.AsyncClient(base_url=registry.http, headers=headers)


async def upload(http: httpx.AsyncClient, data: bytes, fmt: str = "torchscript",
                 digest: str | None = None) -> httpx.Response:
    return await http.post("/v1/artifacts", content=data, headers={
        "X-Artifact-Format": fmt, "X-Artifact-Sha256": digest or sha(data),
        "Content-Type": "application/octet-stream"})


async def test_missing_wrong_and_insufficient_keys(registry: Running) -> None:
    async with client(registry, None) as anonymous:
        reply = await anonymous.get("/v1/models")
        assert reply.status_code == 401 and "Bearer" in reply.json()["message"]
        reply = await anonymous.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert reply.status_code == 401 and "revoked" in reply.json()["message"]
    async with client(registry, "reader") as reader:
        reply = await reader.post("/v1/models", json={"name": "denied"})
        assert reply.status_code == 403
        assert reply.json()["message"] == ("creating a model needs the trainer role; "
                                           "API key 'reader' has the reader role")
        assert (await reader.get("/v1/models/denied")).status_code == 404


async def test_lifecycle_over_rest(registry: Running) -> None:
    async with client(registry) as trainer, client(registry, "operator") as operator:
        assert (await trainer.post("/v1/models", json={"name": "rest-fraud"},
                                   headers={"Idempotency-Key": "m1"})).status_code == 201
        assert (await trainer.post("/v1/models", json={"name": "rest-fraud"},
                                   headers={"Idempotency-Key": "m1"})).status_code == 201
        data = torchscript_bytes("rest")
        artifact = (await upload(trainer, data)).json()
        assert artifact["sha256"] == sha(data)
        downloaded = await trainer.get(f"/v1/artifacts/{artifact['sha256']}")
        assert downloaded.content == data and downloaded.headers["x-artifact-format"] == "torchscript"
        body = {"artifact_uri": artifact["uri"], "metrics": {"accuracy": 0.9},
                "evaluations": [{"holdout_sha256": HOLDOUT, "metrics": {"accuracy": 0.9}}],
                "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}}
        version = (await trainer.post("/v1/models/rest-fraud/versions", json=body)).json()
        assert (version["version"], version["status"]) == (1, "candidate")
        promoted = await trainer.put("/v1/models/rest-fraud/aliases/champion", json={"version": 1})
        assert promoted.json()["status"] == "production"
        assert (await trainer.get("/v1/models/rest-fraud/aliases/champion")).json()["version"] == 1
        split = {"expected_revision": 0, "splits": [{"version": 1, "weight": 1.0, "variant": "champion"}]}
        deployed = (await operator.put("/v1/models/rest-fraud/deployment", json=split)).json()
        assert (deployed["revision"], deployed["fallback_version"]) == (1, 0)
        stale = await operator.put("/v1/models/rest-fraud/deployment", json=split)
        assert stale.status_code == 409 and stale.json()["field"] == "expected_revision"
        served = await trainer.get("/v1/models/rest-fraud/served", params={"at": "2030-01-01T00:00:00Z"})
        assert served.json()["serving_versions"] == [1]
        missing = await operator.post("/v1/models/rest-fraud/deployment/retire", json={"expected_revision": 1})
        assert missing.status_code == 422 and "reason" in missing.text
        retired = await operator.post("/v1/models/rest-fraud/deployment/retire",
                                      json={"expected_revision": 1, "reason": "withdrawn"})
        assert (retired.status_code, retired.json()["revision"], retired.json()["splits"]) == (200, 2, [])
        stale = await operator.post("/v1/models/rest-fraud/deployment/retire",
                                    json={"expected_revision": 1, "reason": "withdrawn"})
        assert stale.status_code == 409 and "not deployed" in stale.json()["message"]
        served = await trainer.get("/v1/models/rest-fraud/served", params={"at": "2099-01-01T00:00:00Z"})
        assert served.json()["serving_versions"] == []
        audit = (await trainer.get("/v1/audit", params={"model": "rest-fraud"})).json()["entries"]
        assert [e["action"] for e in audit] == ["model.created", "version.registered", "alias.moved",
                                                "deployment.changed", "deployment.retired"]
        listed = (await trainer.get("/v1/models/rest-fraud/versions", params={"status": "production"})).json()
        assert [v["version"] for v in listed["versions"]] == [1]


@pytest.mark.parametrize("path", ["/v1/models/..%2f..%2fetc", "/v1/models/%2e%2e", "/v1/models/a%00b",
                                  "/v1/artifacts/..%2F..%2Fetc%2Fpasswd", "/v1/models/%2Fetc%2Fpasswd/versions/1"])
async def test_traversal_in_paths_is_a_client_error(registry: Running, path: str) -> None:
    async with client(registry) as trainer:
        reply = await trainer.get(path)
        assert 400 <= reply.status_code < 500


async def test_bad_bodies_are_refused_with_the_field_named(registry: Running) -> None:
    async with client(registry) as trainer:
        assert (await trainer.post("/v1/models", json={"name": "../evil"})).json()["field"] == "name"
        pickled = await upload(trainer, pickle_bytes())
        assert pickled.status_code == 400 and "pickle" in pickled.json()["message"]
        mismatch = await upload(trainer, torchscript_bytes("x"), digest="0" * 64)
        assert mismatch.status_code == 400 and mismatch.json()["field"] == "sha256"
        too_big = await upload(trainer, b"\x08" + b"0" * (1 << 17), "onnx")
        assert too_big.status_code == 400 and "limit" in too_big.json()["message"]
        invalid = await trainer.post("/v1/models/x/versions", json={"metrics": {"a": "high"}})
        assert invalid.status_code == 422 and invalid.json()["field"] == "metrics.a"
        uri = await trainer.post("/v1/models", json={"name": "uri-model"})
        assert uri.status_code == 201
        for bad in ("file:///etc/passwd", "/etc/passwd", "../x", "%2e%2e%2f"):
            reply = await trainer.post("/v1/models/uri-model/versions", json={"artifact_uri": bad})
            assert reply.status_code == 400 and reply.json()["field"] == "artifact_uri"
        assert (await trainer.get("/v1/models/uri-model/versions")).json()["versions"] == []


async def test_openapi_documents_the_api_and_its_security(registry: Running) -> None:
    async with client(registry) as trainer:
        spec = (await trainer.get("/openapi.json")).json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert {"/v1/models", "/v1/models/{name}/deployment", "/v1/models/{name}/served", "/v1/audit"} <= set(spec["paths"])

"""Each edge maps the error taxonomy with one table: HTTP statuses and gRPC codes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from loopline_core import errors
from loopline_core.edges import grpc as grpc_edge
from loopline_core.edges import http as http_edge
from loopline_core.servers.grpc import GrpcServer
from loopline_core.servers.http import create_app
from loopline_core.servers.readiness import Readiness

CASES = [
    (errors.InvalidArgument, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MalformedEvent, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, 401, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, 403, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, 404, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, 409, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, 409, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
]


@pytest.mark.parametrize(("error", "status", "code"), CASES)
def test_tables_cover_every_error(error: type[errors.LooplineError], status: int, code: grpc.StatusCode) -> None:
    assert http_edge.status_for(error("x")) == status
    assert grpc_edge.status_for(error("x")) == code


def test_only_unavailable_is_retryable() -> None:
    assert [e for e, _, _ in CASES if e("x").retryable] == [errors.Unavailable]


def _client() -> TestClient:
    router = APIRouter()

    @router.get("/things/{name}")
    async def get_thing(name: str) -> dict[str, str]:
        raise errors.NotFound(f"no thing named {name!r}", field="name")

    @router.get("/limit")
    async def limited(n: int) -> dict[str, int]:
        return {"n": n}

    readiness = Readiness()
    readiness.started = True
    return TestClient(create_app("svc", readiness, CollectorRegistry(), [router]))


def test_http_error_names_the_problem() -> None:
    response = _client().get("/things/abc")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "message": "no thing named 'abc'", "field": "name"}


def test_an_unknown_route_or_method_gets_the_same_body_shape() -> None:
    client = _client()
    missing = client.get("/no/such/thing")
    assert missing.status_code == 404
    assert missing.json() == {"error": "NotFound", "message": "no such resource: GET /no/such/thing", "field": None}
    wrong = client.post("/limit")
    assert wrong.status_code == 405 and wrong.json()["message"] == "method POST is not allowed on /limit"
    assert "GET" in wrong.headers["allow"]


def test_http_validation_error_names_the_field() -> None:
    response = _client().get("/limit", params={"n": "many"})
    assert response.status_code == 422
    assert response.json()["field"] == "query.n"


@contextlib.asynccontextmanager
async def serving(method: str, handler: grpc.RpcMethodHandler) -> AsyncIterator[grpc.aio.Channel]:
    """A GrpcServer (with its error mapping) answering test.Svc/<method>, and a channel to it."""
    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", {method: handler}),))

    server = GrpcServer("127.0.0.1", 0, [register], ["test.Svc"])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.stop(0)


async def test_grpc_servicer_errors_become_status_codes() -> None:
    async def explode(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise errors.FailedPrecondition("revision 3 is stale, current is 4", field="expected_revision")

    async with serving("Do", grpc.unary_unary_rpc_method_handler(explode)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary("/test.Svc/Do")(b"")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == "expected_revision: revision 3 is stale, current is 4"


@pytest.mark.parametrize("driver_error", ["DeadlockDetectedError", "SerializationError", "PostgresConnectionError"])
async def test_transient_postgres_errors_become_retryable(driver_error: str) -> None:
    import asyncpg

    from loopline_core.db.pool import translated_errors

    with pytest.raises(errors.Unavailable) as caught:
        async with translated_errors():
            raise getattr(asyncpg, driver_error)("collided")
    assert caught.value.retryable


async def test_bad_data_from_postgres_is_not_retried() -> None:
    import asyncpg

    from loopline_core.db.pool import translated_errors

    with pytest.raises(errors.InvalidArgument):
        async with translated_errors():
            raise asyncpg.DataError("invalid input syntax")


async def test_a_refused_client_stream_gets_the_servers_status_not_a_write_error() -> None:
    """grpc.aio clients overwrite the status with INTERNAL when a write fails as the call ends (grpc#36066)."""
    async def refuse(requests, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[no-untyped-def]
        await anext(aiter(requests))
        raise errors.InvalidArgument("size_bytes 131073 is over the upload limit", field="size_bytes")

    codes: list[grpc.StatusCode] = []
    async with serving("Up", grpc.stream_unary_rpc_method_handler(refuse)) as channel:
        up = channel.stream_unary("/test.Svc/Up")
        for _ in range(200):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await up(iter([b"h"] + [b"0" * (1 << 14)] * 8))
            codes.append(raised.value.code())
            assert raised.value.details() == "size_bytes: size_bytes 131073 is over the upload limit"
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}


async def test_draining_a_refused_stream_is_bounded() -> None:
    read: list[bytes] = []

    async def endless(pause: float = 0.0):  # type: ignore[no-untyped-def]
        while True:
            read.append(b"x" * 1000)
            yield read[-1]
            await asyncio.sleep(pause)

    await grpc_edge.drain(endless(), max_bytes=10_000, max_s=5.0)
    assert len(read) == 11
    read.clear()
    started = asyncio.get_running_loop().time()
    await grpc_edge.drain(endless(0.01), max_bytes=1 << 30, max_s=0.2)
    assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
    assert 5 < len(read) < 30

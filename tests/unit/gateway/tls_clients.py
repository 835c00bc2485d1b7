"""The client side of the TLS tests (and the little servers they talk to): channel credentials and
SSL contexts from the throwaway CA of ``tls_certs``, a raw HTTP/2 connection over TLS, an echo
service, and the whole gateway built and run with given TLS settings."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
from h2_raw import Raw
from tls_certs import Pki

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.settings import GatewaySettings, PredictionLogSettings, TlsSettings


def channel_credentials(pki: Pki, client: str | None = None) -> grpc.ChannelCredentials:
    """Trusts our CA; ``client``: "good" (signed by it), "other" (another CA's) or None (no certificate)."""
    if client is None:
        return grpc.ssl_channel_credentials(pki.read("ca"))
    prefix = "client" if client == "good" else "other_client"
    return grpc.ssl_channel_credentials(pki.read("ca"), pki.read(f"{prefix}_key"), pki.read(f"{prefix}_cert"))


def client_context(pki: Pki, client: str | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client is not None:
        prefix = "client" if client == "good" else "other_client"
        context.load_cert_chain(getattr(pki, f"{prefix}_cert"), getattr(pki, f"{prefix}_key"))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def echo_handlers() -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: h2.ServicerContext) -> bytes:
        return request

    async def big(request: bytes, context: h2.ServicerContext) -> bytes:
        return b"b" * int(request.decode())

    methods = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in (("Echo", echo), ("Big", big))}
    return grpc.method_handlers_generic_handler("test.Edge", methods)


class EchoServicer:
    def handler(self) -> grpc.GenericRpcHandler:
        return echo_handlers()


async def open_tls(pki: Pki, port: int, alpn: list[str] | None = ["h2"], settings: bytes = b"") -> Raw:  # noqa: B006
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki, alpn=alpn),
                                                   server_hostname="localhost")
    raw = Raw(reader, writer)
    writer.write(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, settings))
    return raw


async def running_gateway(tmp_path: Path, tls: TlsSettings) -> tuple[asyncio.Task[int], Callable[[], None], int]:
    settings = GatewaySettings(run_dir=tmp_path, http_port=free_port(), grpc_port=free_port(), tls=tls,
                               prediction_log=PredictionLogSettings(enabled=False), shutdown_grace_s=0.5,
                               triton={"grpc_url": f"127.0.0.1:{free_port()}",  # type: ignore[arg-type]
                                       "http_url": f"127.0.0.1:{free_port()}"})
    gateway = build(settings, registry=object(), consume_events=False)  # type: ignore[arg-type]
    return asyncio.create_task(gateway.run()), gateway.host.request_stop, settings.http_port


async def get(url: str, context: ssl.SSLContext | None) -> int:
    async with httpx.AsyncClient(verify=context if context is not None else True, timeout=5) as client:
        return (await client.get(url)).status_code


async def until_up(url: str, context: ssl.SSLContext) -> None:
    for _ in range(250):
        try:
            assert await get(url, context) == 200
            return
        except httpx.ConnectError:  # not listening yet
            await asyncio.sleep(0.02)
    raise AssertionError(f"{url} never answered")


def tls_settings(pki: Pki, *, mutual: bool = False, min_version: str = "1.2") -> TlsSettings:
    """The gateway's TLS settings with the throwaway CA's server certificate (``mutual``: its CA for clients)."""
    return TlsSettings(cert_file=pki.server_cert, key_file=pki.server_key,
                       client_ca_file=pki.ca if mutual else None, min_version=min_version)  # type: ignore[arg-type]


async def unfinished_handshakes_closed(port: int) -> float:
    """Two clients that never finish a TLS handshake (one says nothing, one sends half a
    ClientHello): the seconds until the server has closed both (10 s at most each)."""
    loop = asyncio.get_running_loop()
    started = loop.time()  # before the server accepts: its timer cannot have started earlier
    silent = await asyncio.open_connection("127.0.0.1", port)
    halfway = await asyncio.open_connection("127.0.0.1", port)
    halfway[1].write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, no more
    for reader, writer in (silent, halfway):
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""
        except ConnectionResetError:
            pass  # closed with the handshake unfinished: an abort is as good as a FIN
        writer.close()
    return loop.time() - started

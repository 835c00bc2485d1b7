"""Renewed TLS files served without a restart (``tls.reload_interval_s``, ``tls_reload``): on the
native edge (also on uvloop), grpc.aio and REST, a rotation (``os.replace``, as cert-manager's
renewals land) followed by a check gives new clients the new certificate, with ALPN, with or
without SNI, and with a rotated client CA for mutual TLS, while open connections keep going; bad
files keep the old certificate with a warning naming the setting; interval 0: no watching.
Servers are started and clients connect with the helpers of ``test_gateway_tls``."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import uvloop
from h2_raw import Raw, message
from pydantic import ValidationError
from tls_certs import Pki
from tls_clients import (
    EchoServicer,
    channel_credentials,
    client_context,
    get,
    open_tls,
    running_gateway,
    until_up,
)

from loopline_core.settings import load

from loopline_serving_gateway import bootstrap
from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer
from loopline_serving_gateway.settings import GatewaySettings, PredictionLogSettings, TlsSettings
from loopline_serving_gateway.tls_reload import TlsReloader


@dataclass
class Files:
    """The gateway's copies of the files (A: ``server_cert``), rotated as a renewal does."""

    pki: Pki
    cert: Path
    key: Path
    ca: Path

    def tls(self, *, mutual: bool = False, interval_s: float = 60.0) -> TlsSettings:
        return TlsSettings(cert_file=self.cert, key_file=self.key, client_ca_file=self.ca if mutual else None,
                           reload_interval_s=interval_s)

    def replace(self, target: Path, content: bytes) -> None:
        """Written beside it, then moved over it in one step."""
        fresh = target.with_name(target.name + ".new")
        fresh.write_bytes(content)
        os.replace(fresh, target)

    def renew(self) -> None:
        """Certificate B and its key in place of A."""
        self.replace(self.key, self.pki.read("renewed_key"))
        self.replace(self.cert, self.pki.read("renewed_cert"))


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> Files:
    cert, key, ca = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    cert.write_bytes(pki.read("server_cert"))
    key.write_bytes(pki.read("server_key"))
    ca.write_bytes(pki.read("ca"))
    return Files(pki, cert, key, ca)


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


async def _handshake(port: int, context: ssl.SSLContext, server_hostname: str | None = "localhost") -> ssl.SSLObject:
    """A new TLS connection's ssl object (the connection closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname)
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    return ssl_object  # type: ignore[no-any-return]


async def _peer(port: int, pki: Pki, client: str | None = None, alpn: list[str] | None = ["h2"],  # noqa: B006
                server_hostname: str | None = "localhost") -> bytes:
    """The certificate a new TLS client is shown (DER)."""
    ssl_object = await _handshake(port, client_context(pki, client, alpn), server_hostname)
    return ssl_object.getpeercert(binary_form=True)  # type: ignore[return-value]


async def _echo(port: int, pki: Pki, client: str | None = None, body: bytes = b"renewed") -> bytes:
    """A call on a new channel (trusting our CA, with client certificate ``client``)."""
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials(pki, client)) as channel:
        return await channel.unary_unary("/test.Edge/Echo")(body, timeout=5)  # type: ignore[no-any-return]


async def _refused(port: int, pki: Pki, client: str | None = None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _echo(port, pki, client)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def _edge(edge: str, tls: TlsSettings, reloader: TlsReloader) -> InferenceServer:
    """The gateway's gRPC server (``edge``: native or aio) serving echo calls, following the files."""
    server = InferenceServer(EchoServicer(), "127.0.0.1", 0, 1 << 20, edge, tls=tls,  # type: ignore[arg-type]
                             reloader=reloader)
    await server.start()
    return server


async def _raw_as(pki: Pki, port: int, client: str) -> Raw:
    """An HTTP/2 connection with client certificate ``client``, its SETTINGS exchanged."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki, client, ["h2"]),
                                                   server_hostname="localhost")
    raw = Raw(reader, writer)
    raw.send(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, b""))
    assert await raw.sync()
    return raw


# --- the setting ---------------------------------------------------------------------------------

def test_the_reload_interval_defaults_to_a_minute_is_read_from_the_environment_and_refuses_negatives(
        files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    assert TlsSettings().reload_interval_s == 60.0
    monkeypatch.setenv("LOOPLINE_TLS__CERT_FILE", str(files.cert))
    monkeypatch.setenv("LOOPLINE_TLS__KEY_FILE", str(files.key))
    monkeypatch.setenv("LOOPLINE_TLS__RELOAD_INTERVAL_S", "2.5")
    assert load(GatewaySettings).tls.reload_interval_s == 2.5
    monkeypatch.setenv("LOOPLINE_TLS__RELOAD_INTERVAL_S", "0")
    assert load(GatewaySettings).tls.reload_interval_s == 0
    monkeypatch.setenv("LOOPLINE_TLS__RELOAD_INTERVAL_S", "-1")
    with pytest.raises(ValidationError, match=r"tls.reload_interval_s=-1.0 is negative.*or 0 to never reload"):
        load(GatewaySettings)
    for bad in ("nan", "inf"):
        with pytest.raises(ValidationError, match="reload_interval_s"):
            TlsSettings(reload_interval_s=bad)  # type: ignore[arg-type]


def test_the_bootstrap_watches_the_files_only_with_tls_on_and_a_nonzero_interval(files: Files, tmp_path: Path) -> None:
    def gateway(tls: TlsSettings) -> bootstrap.Gateway:
        settings = GatewaySettings(run_dir=tmp_path, prediction_log=PredictionLogSettings(enabled=False), tls=tls)
        return bootstrap.build(settings, registry=object(), consume_events=False)  # type: ignore[arg-type]

    def loops(built: bootstrap.Gateway) -> list[str]:
        return [b.name for b in built.host.background]

    plain = gateway(TlsSettings())
    assert plain.tls_reloader is None and "tls-reload" not in loops(plain)
    off = gateway(files.tls(interval_s=0))
    assert off.tls_reloader is None and "tls-reload" not in loops(off)
    assert off.host.tls is not None and off.host.tls.on_load is None and off.grpc_server._reloader is None
    on = gateway(files.tls(interval_s=5))
    assert on.tls_reloader is not None and on.tls_reloader.interval_s == 5 and "tls-reload" in loops(on)
    assert on.host.tls is not None and on.host.tls.on_load == on.tls_reloader.attach
    assert on.grpc_server._reloader is on.tls_reloader


# --- the native edge -----------------------------------------------------------------------------

@pytest.fixture
async def native(files: Files) -> AsyncIterator[Callable[..., asyncio.Future[tuple[NativeGrpcServer, TlsReloader]]]]:
    """Starts the gateway's native edge (echo calls) on the files, following them; stopped at the end."""
    servers: list[InferenceServer] = []

    async def start(mutual: bool = False) -> tuple[NativeGrpcServer, TlsReloader]:
        reloader = TlsReloader(files.tls(mutual=mutual))
        servers.append(await _edge("native", files.tls(mutual=mutual), reloader))
        assert servers[-1]._native is not None
        return servers[-1]._native, reloader

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop(1.0)


async def test_the_native_edge_serves_renewed_files_to_new_connections_and_open_ones_keep_going(
        files: Files, native: Callable[..., object], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopline_serving_gateway.tls_reload")
    server, reloader = await native()  # type: ignore[operator]
    assert server.tls is not None
    names: list[str | None] = []
    switch = server.tls.sni_callback
    assert switch is not None

    def recording(ssl_object: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)
        switch(ssl_object, name, context)  # type: ignore[call-arg]

    server.tls.sni_callback = recording  # type: ignore[assignment]
    a, b = files.pki.server_cert, files.pki.renewed_cert
    raw = await open_tls(files.pki, server.port)
    assert raw.writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == _der(a)
    assert await raw.sync()
    channel = grpc.aio.secure_channel(f"127.0.0.1:{server.port}", channel_credentials(files.pki))
    echo = channel.unary_unary("/test.Edge/Echo")
    assert await echo(b"before", timeout=5) == b"before"
    assert not reloader.check()  # nothing changed: nothing built

    files.renew()
    assert reloader.check() and reloader.reloads == 1
    assert not reloader.check()  # once
    assert await _peer(server.port, files.pki) == _der(b)
    assert await _peer(server.port, files.pki, server_hostname=None) == _der(b)  # no SNI: switched all the same
    assert names[-2:] == ["localhost", None]
    ssl_object = await _handshake(server.port, client_context(files.pki, alpn=["http/1.1", "h2"]))
    assert ssl_object.selected_alpn_protocol() == "h2"  # the new context offers h2 as the first did
    assert await _echo(server.port, files.pki) == b"renewed"
    # what was open before the renewal goes on, on its old handshake
    raw.send(raw.call(1, b"old connection"))
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and data == message(b"old connection")
    assert raw.writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == _der(a)
    assert await echo(b"old channel", timeout=5) == b"old channel"
    raw.close()
    await channel.close()
    assert "renewed files in use for new connections: tls.cert_file" in caplog.text
    assert "SHA-256 fingerprint" in caplog.text


async def test_a_rotated_client_ca_decides_on_new_clients_of_the_native_edge(
        files: Files, native: Callable[..., object]) -> None:
    server, reloader = await native(mutual=True)  # type: ignore[operator]
    assert await _echo(server.port, files.pki, "good") == b"renewed"
    await _refused(server.port, files.pki, "other")
    kept = await _raw_as(files.pki, server.port, "good")
    files.replace(files.ca, files.pki.read("other_ca"))  # clients of the other CA only, from now on
    files.renew()
    assert reloader.check()
    assert await _echo(server.port, files.pki, "other") == b"renewed"
    for refused in ("good", None):
        await _refused(server.port, files.pki, refused)
    ssl_object = await _handshake(server.port, client_context(files.pki, "other", ["h2"]))
    assert ssl_object.selected_alpn_protocol() == "h2"
    assert ssl_object.getpeercert(binary_form=True) == _der(files.pki.renewed_cert)
    kept.send(kept.call(1, b"still trusted"))  # accepted under the old CA: goes on
    headers, data = await kept.answer(1)
    assert headers["grpc-status"] == "0" and data == message(b"still trusted")
    kept.close()


# --- bad files ----------------------------------------------------------------------------------

def _breakages(files: Files) -> dict[str, tuple[Callable[[], None], str]]:
    pem = files.pki.read("renewed_cert")
    return {
        "the key of another certificate": (lambda: files.replace(files.key, files.pki.read("stray_key")),
                                           "is not the private key of the certificate in tls.cert_file"),
        "a renewed certificate before its key": (lambda: files.replace(files.cert, pem),
                                                 "is not the private key of the certificate in tls.cert_file"),
        "an empty certificate": (lambda: files.cert.write_bytes(b""), "tls.cert_file"),
        "a half-written certificate": (lambda: files.cert.write_bytes(pem[: len(pem) // 2]),
                                       "holds no PEM certificate"),
        "a half-written key": (lambda: files.key.write_bytes(files.pki.read("renewed_key")[:60]),
                               "tls.key_file"),
        "a missing key": (lambda: files.key.unlink(), "tls.key_file '" + str(files.key) + "' cannot be read"),
    }


@pytest.mark.parametrize("edge", ["native", "aio"])
@pytest.mark.parametrize("case", ["the key of another certificate", "a renewed certificate before its key",
                                  "an empty certificate", "a half-written certificate", "a half-written key",
                                  "a missing key"])
async def test_bad_renewed_files_keep_the_old_certificate_with_a_warning_until_they_are_fixed(
        files: Files, edge: str, case: str, caplog: pytest.LogCaptureFixture) -> None:
    reloader = TlsReloader(files.tls())
    server = await _edge(edge, files.tls(), reloader)
    try:
        before = _der(files.cert)
        breakage, named = _breakages(files)[case]
        breakage()
        caplog.set_level(logging.WARNING, logger="loopline_serving_gateway.tls_reload")
        for _ in range(2):  # tried again at every check, A served meanwhile
            caplog.clear()
            assert not reloader.check()
            (warning,) = caplog.records
            assert warning.levelno == logging.WARNING and named in warning.getMessage(), warning.getMessage()
            assert "the previous certificate is still served" in warning.getMessage()
            assert await _peer(server.port, files.pki) == before
            assert await _echo(server.port, files.pki) == b"renewed"
        files.renew()  # the rotation completes
        assert reloader.check()
        assert await _peer(server.port, files.pki) == _der(files.pki.renewed_cert)
        assert await _echo(server.port, files.pki) == b"renewed"
    finally:
        await server.stop(1.0)


async def test_files_that_change_while_being_read_are_read_again_at_the_next_check(files: Files) -> None:
    reloader = TlsReloader(files.tls())
    switched: list[bool] = []
    moved = [False]

    def prepare() -> Callable[[], None]:
        if not moved[0]:  # the rotation's second step lands in the middle of the check
            moved[0] = True
            files.replace(files.cert, files.pki.read("renewed_cert"))
        return lambda: switched.append(True)

    reloader.watch(prepare)
    files.replace(files.key, files.pki.read("renewed_key"))
    assert not reloader.check() and switched == []
    assert reloader.check() and switched == [True]


# --- grpc.aio -----------------------------------------------------------------------------------

async def test_grpc_aio_serves_renewed_files_at_the_next_handshake_and_open_channels_keep_going(
        files: Files) -> None:
    reloader = TlsReloader(files.tls())
    server = await _edge("aio", files.tls(), reloader)
    try:
        channel = grpc.aio.secure_channel(f"127.0.0.1:{server.port}", channel_credentials(files.pki))
        echo = channel.unary_unary("/test.Edge/Echo")
        assert await echo(b"before", timeout=5) == b"before"
        assert await _peer(server.port, files.pki) == _der(files.pki.server_cert)
        files.renew()
        assert reloader.check()
        for _ in range(2):  # fetched once, then kept
            assert await _peer(server.port, files.pki) == _der(files.pki.renewed_cert)
            assert await _peer(server.port, files.pki, server_hostname=None) == _der(files.pki.renewed_cert)
        assert await _echo(server.port, files.pki) == b"renewed"
        assert await echo(b"old channel", timeout=5) == b"old channel"  # opened before: still served
        await channel.close()
    finally:
        await server.stop(1.0)


async def test_a_rotated_client_ca_decides_on_new_clients_of_grpc_aio(files: Files) -> None:
    reloader = TlsReloader(files.tls(mutual=True))
    server = await _edge("aio", files.tls(mutual=True), reloader)
    try:
        await _refused(server.port, files.pki, "other")
        kept = grpc.aio.secure_channel(f"127.0.0.1:{server.port}", channel_credentials(files.pki, "good"))
        echo = kept.unary_unary("/test.Edge/Echo")
        assert await echo(b"before", timeout=5) == b"before"
        files.replace(files.ca, files.pki.read("other_ca"))
        assert reloader.check()
        assert await _echo(server.port, files.pki, "other") == b"renewed"
        for refused in ("good", None):
            await _refused(server.port, files.pki, refused)
        assert await echo(b"old channel", timeout=5) == b"old channel"
        await kept.close()
    finally:
        await server.stop(1.0)


# --- REST, through the real bootstrap --------------------------------------------------------------

@pytest.fixture
def reloaders(monkeypatch: pytest.MonkeyPatch) -> list[TlsReloader]:
    """The reloaders the bootstrap makes."""
    made: list[TlsReloader] = []

    class Recorded(TlsReloader):
        def __init__(self, settings: TlsSettings) -> None:
            super().__init__(settings)
            made.append(self)

    monkeypatch.setattr(bootstrap, "TlsReloader", Recorded)
    return made


async def test_rest_serves_renewed_files_to_new_connections_and_a_kept_alive_one_goes_on(
        files: Files, tmp_path: Path, reloaders: list[TlsReloader]) -> None:
    run, stop, port = await running_gateway(tmp_path, files.tls())
    url = f"https://localhost:{port}/v2/health/live"
    try:
        await until_up(url, client_context(files.pki))
        (reloader,) = reloaders
        async with httpx.AsyncClient(verify=client_context(files.pki), timeout=5) as kept:
            response = await kept.get(url)
            assert response.status_code == 200
            stream = response.extensions["network_stream"]
            assert stream.get_extra_info("ssl_object").getpeercert(binary_form=True) == _der(files.pki.server_cert)
            files.renew()
            assert reloader.check()
            assert await _peer(port, files.pki, alpn=None) == _der(files.pki.renewed_cert)
            assert await _peer(port, files.pki, alpn=None, server_hostname=None) == _der(files.pki.renewed_cert)
            assert await get(url, client_context(files.pki)) == 200
            again = await kept.get(url)  # the same connection, on its old handshake
            assert again.status_code == 200 and again.extensions["network_stream"] is stream
            assert stream.get_extra_info("ssl_object").getpeercert(binary_form=True) == _der(files.pki.server_cert)
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


async def test_rest_with_a_rotated_client_ca_takes_the_new_ca_s_clients_and_bad_files_keep_the_old(
        files: Files, tmp_path: Path, reloaders: list[TlsReloader], caplog: pytest.LogCaptureFixture) -> None:
    run, stop, port = await running_gateway(tmp_path, files.tls(mutual=True))
    url = f"https://127.0.0.1:{port}/v2/health/live"
    try:
        await until_up(url, client_context(files.pki, "good"))
        (reloader,) = reloaders
        caplog.set_level(logging.WARNING, logger="loopline_serving_gateway.tls_reload")
        files.replace(files.ca, b"-----BEGIN CERTIFICATE-----\nMIIB")  # half-written
        assert not reloader.check()
        assert "tls.client_ca_file" in caplog.text
        assert await get(url, client_context(files.pki, "good")) == 200
        files.replace(files.ca, files.pki.read("other_ca"))
        assert reloader.check()
        assert await get(url, client_context(files.pki, "other")) == 200
        for refused in ("good", None):
            with pytest.raises(httpx.TransportError):
                await get(url, client_context(files.pki, refused))
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


# --- the background loop, uvloop ------------------------------------------------------------------

async def test_the_background_loop_checks_at_its_interval(files: Files) -> None:
    reloader = TlsReloader(files.tls(interval_s=0.02))
    switched: list[bool] = []
    reloader.watch(lambda: lambda: switched.append(True))
    loop = asyncio.create_task(reloader.run())
    try:
        files.renew()
        for _ in range(250):
            if switched:
                break
            await asyncio.sleep(0.02)
        assert switched == [True] and reloader.reloads == 1
    finally:
        loop.cancel()


def test_the_native_edge_follows_renewed_files_on_uvloop(files: Files) -> None:
    """Production runs on uvloop, whose TLS transport is its own."""

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        reloader = TlsReloader(files.tls(mutual=True))
        server = await _edge("native", files.tls(mutual=True), reloader)
        try:
            assert await _peer(server.port, files.pki, "good") == _der(files.pki.server_cert)
            files.renew()
            files.replace(files.ca, files.pki.read("other_ca"))
            assert reloader.check()
            ssl_object = await _handshake(server.port, client_context(files.pki, "other", ["h2"]), None)
            assert ssl_object.getpeercert(binary_form=True) == _der(files.pki.renewed_cert)
            assert ssl_object.selected_alpn_protocol() == "h2"
            assert await _echo(server.port, files.pki, "other") == b"renewed"
            with pytest.raises(grpc.aio.AioRpcError):
                await _echo(server.port, files.pki, "good")
        finally:
            await server.stop(1.0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


@pytest.mark.parametrize("edge", ["native", "aio"])
async def test_a_start_retried_after_a_failure_watches_the_files_once(files: Files, edge: str) -> None:
    import socket

    taken = socket.socket()  # the port held without SO_REUSEPORT: the first start fails
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    reloader = TlsReloader(files.tls())
    server = InferenceServer(EchoServicer(), "127.0.0.1", port, 1 << 20, edge,  # type: ignore[arg-type]
                             tls=files.tls(), reloader=reloader)
    with pytest.raises((OSError, RuntimeError)):
        await server.start()
    taken.close()
    server.port = port
    await server.start()  # the host retries a failed start
    try:
        assert len(reloader._prepares) == 1  # noqa: SLF001 - one watch, not one per attempt
        files.renew()
        assert reloader.check()
        assert await _peer(port, files.pki) == _der(files.pki.renewed_cert)
    finally:
        await server.stop(1.0)

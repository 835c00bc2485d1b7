"""The gateway's TLS settings: wired into its servers only when set, read from the environment,
and refused at start-up with the setting named (missing, unreadable, mismatched or encrypted
files; versions an edge cannot serve; a file broken after the settings loaded)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError
from tls_certs import Pki
from tls_clients import EchoServicer, tls_settings

from loopline_core.servers.assemble import assemble
from loopline_core.settings import ServiceSettings, load

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer
from loopline_serving_gateway.settings import GatewaySettings, GrpcEdgeSettings, PredictionLogSettings, TlsSettings


def test_the_bootstrap_wires_tls_only_when_set(pki: Pki, tmp_path: Path) -> None:
    plain = build(GatewaySettings(run_dir=tmp_path, prediction_log=PredictionLogSettings(enabled=False)),
                  registry=object(), consume_events=False)  # type: ignore[arg-type]
    assert plain.host.tls is None and plain.grpc_server._tls is None
    secure = build(GatewaySettings(run_dir=tmp_path, prediction_log=PredictionLogSettings(enabled=False),
                                   tls=tls_settings(pki, mutual=True)), registry=object(), consume_events=False)  # type: ignore[arg-type]
    assert secure.host.tls is not None
    assert (secure.host.tls.certfile, secure.host.tls.keyfile, secure.host.tls.ca_certs) == (
        str(pki.server_cert), str(pki.server_key), str(pki.ca))
    assert secure.host.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert assemble(ServiceSettings(service_name="other")).tls is None  # other services: unchanged


# --- settings refused at start-up --------------------------------------------------------------

def test_tls_is_off_by_default_and_read_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not GatewaySettings().tls.enabled
    monkeypatch.setenv("LOOPLINE_TLS__CERT_FILE", str(pki.server_cert))
    monkeypatch.setenv("LOOPLINE_TLS__KEY_FILE", str(pki.server_key))
    monkeypatch.setenv("LOOPLINE_TLS__CLIENT_CA_FILE", str(pki.ca))
    monkeypatch.setenv("LOOPLINE_TLS__MIN_VERSION", "1.3")
    tls = load(GatewaySettings).tls
    assert tls.enabled and tls.mutual
    assert (tls.cert_file, tls.key_file, tls.client_ca_file, tls.min_version) == (
        pki.server_cert, pki.server_key, pki.ca, "1.3")


def _bad_settings(pki: Pki, tmp_path: Path) -> dict[str, tuple[dict[str, object], str]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    return {
        "only the certificate": ({"cert_file": pki.server_cert}, "tls.key_file is missing"),
        "only the key": ({"key_file": pki.server_key}, "tls.cert_file is missing"),
        "a CA without a certificate": ({"client_ca_file": pki.ca}, "tls.client_ca_file is set without"),
        "a missing certificate file": ({"cert_file": tmp_path / "nowhere.pem", "key_file": pki.server_key},
                                       "tls.cert_file '" + str(tmp_path / "nowhere.pem") + "' cannot be read"),
        "a missing key file": ({"cert_file": pki.server_cert, "key_file": tmp_path / "nowhere.key"},
                               "tls.key_file '" + str(tmp_path / "nowhere.key") + "' cannot be read"),
        "a directory as the key": ({"cert_file": pki.server_cert, "key_file": tmp_path}, "tls.key_file"),
        "a key that is not the certificate's": ({"cert_file": pki.server_cert, "key_file": pki.stray_key},
                                               "is not the private key of the certificate in tls.cert_file"),
        "a key as the certificate": ({"cert_file": pki.server_key, "key_file": pki.server_key},
                                     "tls.cert_file '" + str(pki.server_key) + "' holds no PEM certificate"),
        "garbage as the key": ({"cert_file": pki.server_cert, "key_file": garbage},
                               "tls.key_file '" + str(garbage) + "' holds no PEM private key"),
        "an encrypted key": ({"cert_file": pki.server_cert, "key_file": pki.encrypted_key},
                             "it is encrypted"),
        "a missing client CA": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                 "client_ca_file": tmp_path / "ca-nowhere.pem"}, "tls.client_ca_file"),
        "garbage as the client CA": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                      "client_ca_file": garbage}, "tls.client_ca_file '" + str(garbage)),
        "an unknown minimum version": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                        "min_version": "1.1"}, "min_version"),
    }


@pytest.mark.parametrize("case", ["only the certificate", "only the key", "a CA without a certificate",
                                  "a missing certificate file", "a missing key file", "a directory as the key",
                                  "a key that is not the certificate's", "a key as the certificate",
                                  "garbage as the key", "an encrypted key", "a missing client CA",
                                  "garbage as the client CA", "an unknown minimum version"])
def test_bad_tls_settings_are_refused_at_start_up_with_the_setting_named(
        pki: Pki, tmp_path: Path, case: str) -> None:
    fields, expected = _bad_settings(pki, tmp_path)[case]
    with pytest.raises(ValidationError) as caught:
        GatewaySettings(tls=fields)  # type: ignore[arg-type]
    assert expected in str(caught.value), str(caught.value)


def test_bad_tls_settings_from_the_environment_stop_the_start(
        pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_TLS__CERT_FILE", str(pki.server_cert))
    with pytest.raises(ValidationError, match="tls.key_file is missing .LOOPLINE_TLS__KEY_FILE."):
        load(GatewaySettings)
    monkeypatch.setenv("LOOPLINE_TLS__KEY_FILE", str(pki.stray_key))
    with pytest.raises(ValidationError, match="tls.key_file .* is not the private key"):
        load(GatewaySettings)


def test_tls_1_3_only_is_refused_on_the_grpc_aio_edge(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="tls.min_version=1.3 is not available with grpc_server=aio"):
        GatewaySettings(grpc_server="aio", tls=tls_settings(pki, min_version="1.3"))
    assert GatewaySettings(grpc_server="aio", tls=tls_settings(pki)).tls.enabled
    assert GatewaySettings(grpc_server="native", tls=tls_settings(pki, min_version="1.3")).tls.min_version == "1.3"


@pytest.mark.parametrize("edge", ["native", "aio"])
def test_a_file_broken_after_the_settings_loaded_stops_the_grpc_port_from_starting(
        pki: Pki, tmp_path: Path, edge: str) -> None:
    cert = tmp_path / "server.pem"
    cert.write_bytes(pki.read("server_cert"))
    tls = TlsSettings(cert_file=cert, key_file=pki.server_key)
    cert.write_text("rotated badly\n")
    server = InferenceServer(EchoServicer(), "127.0.0.1", 0, 1 << 20, edge,  # type: ignore[arg-type]
                             GrpcEdgeSettings(), tls=tls)
    with pytest.raises(ValueError, match="tls.cert_file .* holds no PEM certificate"):
        asyncio.run(server.start())

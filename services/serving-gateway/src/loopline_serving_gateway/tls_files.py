"""The TLS files of the gateway's settings (``settings.TlsSettings``) turned into a server
``ssl.SSLContext``, each problem a ValueError that names the setting whose file is at fault."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from loopline_serving_gateway.settings import TlsSettings

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
FileSetting = Literal["cert_file", "key_file", "client_ca_file"]


def _no_passphrase() -> str:
    raise ValueError("it is encrypted; the gateway needs a private key without a passphrase")


def read(settings: TlsSettings, name: FileSetting) -> bytes:
    """One of the files' bytes; an OSError is a ValueError that names the setting."""
    path = getattr(settings, name)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"tls.{name} {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def server_context(settings: TlsSettings, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A server-side context from the files (ALPN ``alpn`` offered); a ValueError names the
    setting whose file is unreadable, holds no PEM certificate or key, or does not match."""
    cert, key, client_ca = settings.cert_file, settings.key_file, settings.client_ca_file
    if cert is None or key is None:
        raise ValueError("TLS is off: tls.cert_file and tls.key_file are not set")
    for name in ("cert_file", "key_file", "client_ca_file"):
        if getattr(settings, name) is not None:
            read(settings, name)  # type: ignore[arg-type]  # readable, or named
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[settings.min_version]
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(cert))
    except ssl.SSLError as exc:
        raise ValueError(f"tls.cert_file {str(cert)!r} holds no PEM certificate ({exc.reason or exc})") from None
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ValueError as exc:
        raise ValueError(f"tls.key_file {str(key)!r}: {exc}") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"tls.key_file {str(key)!r} is not the private key of the certificate in "
                             f"tls.cert_file {str(cert)!r}") from None
        raise ValueError(f"tls.key_file {str(key)!r} holds no PEM private key ({exc.reason or exc})") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except ssl.SSLError as exc:
            raise ValueError(f"tls.client_ca_file {str(client_ca)!r} holds no PEM certificate "
                             f"({exc.reason or exc})") from None
        context.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context

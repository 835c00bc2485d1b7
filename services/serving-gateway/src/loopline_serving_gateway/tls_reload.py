"""Renewed TLS files served without a restart (``tls.reload_interval_s``).

``TlsReloader.check`` looks at the three files of ``settings.TlsSettings`` (``os.stat``: a
change of mtime, size or inode, as an in-place rewrite, an ``os.replace`` or Kubernetes'
symlink swap makes). When one changed it builds everything the servers need from them (each
build checked by ``tls_files.server_context``), and only when every build succeeded, and the
files did not move meanwhile, are the new ones switched in, all servers at once. Bad files (a
key of another certificate, a file half-written or missing mid-rotation) log a WARNING naming
the setting and the servers keep what they serve; the next check tries again.

What a server hands out is its business (``watch``); for the ``ssl.SSLContext`` that asyncio
servers listen with there is ``switching``/``attach``: the listening context's ``sni_callback``
(called for every ClientHello, with or without SNI) moves the new connection onto the newest
context, whose certificate, key and client CAs (and ALPN, offered the same) the handshake then
uses. Connections already open keep theirs. What the listening context fixed at start stays:
whether client certificates are required, the minimum version, the ciphers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from collections.abc import Callable, Sequence

from loopline_serving_gateway import tls_files
from loopline_serving_gateway.settings import TlsSettings

log = logging.getLogger(__name__)

#: Builds what one server will hand out from the files now (a ValueError naming the setting when
#: they are not usable) and returns what switches it in.
Prepare = Callable[[], Callable[[], None]]
#: (mtime_ns, size, inode, device) of each file, None for one that cannot be looked at.
Stamp = tuple[tuple[int, int, int, int] | None, ...]
_FILES: tuple[tls_files.FileSetting, ...] = ("cert_file", "key_file", "client_ca_file")


class SwitchingContext:
    """A listening context whose new connections take the newest ``current`` context."""

    def __init__(self, listening: ssl.SSLContext) -> None:
        self.listening = listening
        self.current = listening
        listening.sni_callback = self._switch

    def _switch(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                listening: ssl.SSLContext) -> None:
        current = self.current
        if current is not listening:
            ssl_object.context = current


class TlsReloader:
    """Watches the TLS files of ``settings``; ``run`` checks them every ``reload_interval_s``."""

    def __init__(self, settings: TlsSettings) -> None:
        if not settings.enabled:
            raise ValueError("TLS is off: tls.cert_file and tls.key_file are not set")
        self._settings = settings
        self._prepares: list[Prepare] = []
        self._seen = self._stamp()
        self.reloads = 0

    @property
    def interval_s(self) -> float:
        return self._settings.reload_interval_s

    def watch(self, prepare: Prepare) -> None:
        """``prepare`` is called at each change of the files; what it returns, once all succeeded."""
        self._prepares.append(prepare)

    def switching(self, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A listening context from the files (ALPN ``alpn``) that follows their renewals."""
        listening = self._settings.server_context(alpn)
        self.attach(listening, alpn)
        return listening

    def attach(self, listening: ssl.SSLContext, alpn: Sequence[str] = ()) -> None:
        """Makes an existing listening context (made from the same files) follow their renewals."""
        switch = SwitchingContext(listening)

        def prepare() -> Callable[[], None]:
            context = self._settings.server_context(alpn)

            def commit() -> None:
                switch.current = context
            return commit

        self.watch(prepare)

    def _stamp(self) -> Stamp:
        stamps: list[tuple[int, int, int, int] | None] = []
        for name in _FILES:
            path = getattr(self._settings, name)
            if path is None:
                continue
            try:
                info = os.stat(path)
            except OSError:
                stamps.append(None)
                continue
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev))
        return tuple(stamps)

    def check(self) -> bool:
        """Switches the servers to the files if they changed and are usable; True when it did."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        try:
            commits = [prepare() for prepare in self._prepares]
            self._settings.server_context()  # checked even with no server watching
            certificate = _describe(self._settings.read("cert_file"))
        except ValueError as exc:
            log.warning("the TLS files changed but cannot be used, the previous certificate is still served "
                        "(tried again in %gs): %s", self.interval_s, exc)
            return False
        if self._stamp() != stamp:  # rewritten while we read them: what we built may mix old and new
            log.info("the TLS files changed while being read; they are read again at the next check")
            return False
        for commit in commits:
            commit()
        self._seen = stamp
        self.reloads += 1
        log.info("TLS: renewed files in use for new connections: tls.cert_file %r (%s)",
                 str(self._settings.cert_file), certificate)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the servers keep what they serve; a reload must not stop them
                log.exception("TLS: checking the files for a renewal failed; tried again in %gs", self.interval_s)


def _describe(chain: bytes) -> str:
    """The first certificate of a PEM chain, as ``openssl x509 -fingerprint -sha256`` shows it."""
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    start = chain.find(begin)
    stop = chain.find(end, start)
    if start < 0 or stop < 0:
        return "no certificate"
    der = ssl.PEM_cert_to_DER_cert(chain[start:stop + len(end)].decode("ascii", "replace"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA-256 fingerprint " + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))

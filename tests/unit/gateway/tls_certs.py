"""Throwaway PKI for the TLS tests (``cryptography``): a CA, a server certificate for
localhost/127.0.0.1 signed by it, a client certificate signed by it, and a second CA with a
client certificate of its own (which the first CA's mutual TLS must refuse), and a renewed server
certificate (what a rotation puts in place). PEM files in a directory; EC P-256 keys (fast to make)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY_PEM = serialization.PrivateFormat.PKCS8


@dataclass(frozen=True)
class Pki:
    ca: Path             #: the CA's certificate: clients trust it, mutual TLS checks clients with it
    server_cert: Path    #: localhost / 127.0.0.1 / ::1, signed by ``ca``
    server_key: Path
    client_cert: Path    #: signed by ``ca`` (clientAuth)
    client_key: Path
    other_ca: Path       #: another CA
    other_client_cert: Path  #: signed by ``other_ca``: refused by mutual TLS with ``ca``
    other_client_key: Path
    stray_key: Path      #: a key that belongs to no certificate here
    encrypted_key: Path  #: ``server_key`` under a passphrase
    renewed_cert: Path   #: localhost / 127.0.0.1 / ::1 again, signed by ``ca``, with a key of its own
    renewed_key: Path

    def read(self, name: str) -> bytes:
        return Path(getattr(self, name)).read_bytes()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
                 usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer is not None else _name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey,
               encryption: serialization.KeySerializationEncryption | None = None) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, _KEY_PEM,
                                       encryption or serialization.NoEncryption()))
    return path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, other_ca_key = _key(), _key()
    ca = _certificate("Loopline test CA", ca_key, None, ca_key, ca=True)
    other_ca = _certificate("Another test CA", other_ca_key, None, other_ca_key, ca=True)
    server_key, client_key, other_client_key, renewed_key = _key(), _key(), _key(), _key()
    server = _certificate("localhost", server_key, ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    renewed = _certificate("localhost", renewed_key, ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("loopline-client", client_key, ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_client = _certificate("stranger", other_client_key, other_ca, other_ca_key,
                                usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca),
        server_cert=_write_cert(directory / "server.pem", server),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client),
        client_key=_write_key(directory / "client.key", client_key),
        other_ca=_write_cert(directory / "other-ca.pem", other_ca),
        other_client_cert=_write_cert(directory / "other-client.pem", other_client),
        other_client_key=_write_key(directory / "other-client.key", other_client_key),
        stray_key=_write_key(directory / "stray.key", _key()),
        encrypted_key=_write_key(directory / "server-encrypted.key", server_key,
                                 serialization.BestAvailableEncryption(b"secret")),
        renewed_cert=_write_cert(directory / "renewed.pem", renewed),
        renewed_key=_write_key(directory / "renewed.key", renewed_key),
    )

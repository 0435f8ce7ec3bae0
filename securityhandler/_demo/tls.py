"""A throwaway TLS certificate, so that the demo serves HTTPS.

The example's ``security.yaml`` demands secure transport wherever a password
is needed, so the demo cannot answer those paths over plain HTTP. At start it
makes a self-signed certificate for ``127.0.0.1`` and ``localhost``, valid
for one day, in a directory only its user can enter, and removes it on exit.
Clients trust it by naming the certificate file (``curl --cacert``).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)
SUBJECT = "securityhandler demo"


@dataclass(frozen=True)
class Certificate:
    """Where a certificate and its private key were written.

    :param cert: the PEM certificate: gunicorn's ``certfile``, and the file
        a client trusts (``curl --cacert``).
    :param key: the PEM private key: gunicorn's ``keyfile``; mode 0600.
    """

    cert: Path
    key: Path

    @property
    def directory(self) -> Path:
        """Return the private directory holding both files."""
        return self.cert.parent


def write_certificate(
    directory: Path, *, now: datetime.datetime | None = None
) -> Certificate:
    """Write a new key and a self-signed certificate for the loopback host.

    The key is EC P-256; the certificate names ``IP:127.0.0.1`` and
    ``DNS:localhost`` and is valid from ``now`` for :data:`VALIDITY`.

    :param directory: an existing directory, private to this user.
    :param now: the start of validity; default the current time (UTC).
    """
    start = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _build(key, start).sign(key, hashes.SHA256())
    paths = Certificate(directory / "cert.pem", directory / "key.pem")
    _write_private(
        paths.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return paths


def _build(
    key: ec.EllipticCurvePrivateKey, start: datetime.datetime
) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT)])
    public = key.public_key()
    # Not a CA: a client that trusts this file trusts this one server
    # certificate, never one it signed. TLS servers only; key identifiers as
    # RFC 5280 asks.
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
        )
    )


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by this user only, before any byte is written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)


@contextmanager
def temporary_certificate() -> Iterator[Certificate]:
    """Yield a new certificate in a private temporary directory (mode 0700).

    The directory is removed on exit, but only by the process that made it:
    gunicorn's workers are forks of that process and leave through the same
    frames, and gunicorn reads the files again for every connection.
    """
    owner = os.getpid()
    directory = Path(tempfile.mkdtemp(prefix="securityhandler-demo-"))
    try:
        yield write_certificate(directory)
    finally:
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

"""Dev PKI for the Docker daemons' mutual TLS: one CA, a server certificate per daemon, a client certificate,
and a second client certificate from another CA (the "untrusted client" fault).

Made with `cryptography` (already pulled in by Airflow) so no openssl config files are needed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import config

VALID_DAYS = 365


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tripclick demo"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _write_leaf(folder: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca: x509.Certificate) -> None:
    """key.pem, cert.pem and the CA to trust (ca.pem): the layout Docker's --tlsverify and docker-py read."""
    _write_key(folder / "key.pem", key)
    _write_cert(folder / "cert.pem", cert)
    _write_cert(folder / "ca.pem", ca)


def _leaf(
    cn: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        # docker-py ignores tls_hostname, so the certificate must name exactly the host in docker_url.
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(config.HOST)), x509.DNSName("localhost")]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def ensure() -> None:
    """Create the PKI once; later calls reuse it (delete .state/demo/tls to rotate).

    Built in a temporary folder and renamed into place under a lock, so daemons starting in parallel never
    see (or write) half a PKI: a certificate from one run and a key from another do not match.
    """
    root = config.tls_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".tls.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
            return
        tmp = root.parent / ".tls.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)


def build(root: Path) -> None:
    """The whole PKI in a new folder ``root``: CA, one server folder per daemon, the client folders."""
    root.mkdir()
    root.chmod(0o700)
    ca_key, ca_cert = _ca("tripclick demo CA")
    _write_key(root / "ca-key.pem", ca_key)
    _write_cert(root / "ca.pem", ca_cert)
    for server in config.DOCKER_SERVERS:
        d = root / server
        d.mkdir()
        _write_leaf(d, *_leaf(f"{server} docker daemon", ca_key, ca_cert, server=True), ca_cert)
    # The folder the DAG reads (tripclick_docker_tls_dir): ca.pem, cert.pem, key.pem
    client = root / config.client_tls_dir().name
    client.mkdir()
    _write_leaf(client, *_leaf("tripclick airflow", ca_key, ca_cert, server=False), ca_cert)
    # Same server trust, but a client certificate signed by a CA the daemons do not know.
    rogue_key, rogue_cert = _ca("some other CA")
    untrusted = root / config.untrusted_tls_dir().name
    untrusted.mkdir()
    _write_leaf(untrusted, *_leaf("tripclick airflow", rogue_key, rogue_cert, server=False), ca_cert)
    (root / ".complete").write_text("ok\n")

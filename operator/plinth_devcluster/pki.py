"""The emulated cluster's keys and certificates: a self-made CA, the API server's serving
certificate, client certificates for the control-plane components, and the service-account
signing key pair. ECDSA P-256 throughout: generated in milliseconds, accepted everywhere."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)

API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says its holder is (user name and groups)."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterPki:
    """Every key and certificate file of one cluster."""

    ca: KeyPair
    apiserver: KeyPair
    service_account_key: Path
    service_account_pub: Path
    clients: dict[str, KeyPair]


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def subject(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate_builder(
    name: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def ca_certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = subject(common_name)
    return (
        certificate_builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def leaf_certificate(
    issuer: _Issuer,
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    builder = (
        certificate_builder(name, issuer.name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


def serving_alt_names(service_ip: str) -> list[x509.GeneralName]:
    """DNS names and IPs a client may use for the API server (loopback and in-cluster)."""
    dns: list[x509.GeneralName] = [x509.DNSName(n) for n in API_SERVER_NAMES]
    ips: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1", service_ip)
    ]
    return dns + ips


def write_pair(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> KeyPair:
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key_pem(key))
    pair.key.chmod(0o600)
    return pair


def write_cluster_pki(
    directory: Path, cluster_name: str, service_ip: str, clients: dict[str, ClientIdentity]
) -> ClusterPki:
    """Create the CA, serving cert, client certs (one per entry in `clients`) and SA keys."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca_cert = ca_certificate(ca_key, f"plinth-{cluster_name}-ca")
    issuer = _Issuer(name=ca_cert.subject, key=ca_key)
    serving_key = new_key()
    serving = leaf_certificate(
        issuer,
        serving_key,
        subject("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        serving_alt_names(service_ip),
    )
    client_pairs = {
        stem: write_client_pair(directory, stem, issuer, identity)
        for stem, identity in clients.items()
    }
    sa_key = new_key()
    (directory / "sa.key").write_bytes(key_pem(sa_key))
    (directory / "sa.key").chmod(0o600)
    (directory / "sa.pub").write_bytes(public_pem(sa_key))
    return ClusterPki(
        ca=write_pair(directory, "ca", ca_cert, ca_key),
        apiserver=write_pair(directory, "apiserver", serving, serving_key),
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
        clients=client_pairs,
    )


def write_client_pair(
    directory: Path, stem: str, issuer: _Issuer, identity: ClientIdentity
) -> KeyPair:
    key = new_key()
    cert = leaf_certificate(
        issuer, key, subject(identity.user, identity.groups), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return write_pair(directory, stem, cert, key)

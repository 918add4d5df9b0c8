"""Theory of operation: who is who on the wire.

Every gRPC listener of the runtime (a replica's TaskService and CoordinationService, an agent's
AgentService) speaks TLS and requires a client certificate, loopback included: anyone who can
reach a port could otherwise submit, read, forge results or pose as an agent. A peer's identity
is its certificate, never a field of the message it sends.

One certificate authority per cluster vouches for everyone. The embedded default creates it in
``data_dir/tls`` on first start (its key readable by the owner only), as it creates the Raft and
Redis secrets; production points ``tls.ca`` in cluster.yaml at its own CA. The CA issues:

* ``replica:<id>`` for each MCA replica (serves clients and agents, calls agents),
* ``agent:<id>`` for each agent of the deployment (serves the leader, calls the replicas),
* ``client:<name>`` for a user of the SDK or ``mca``: owns the sessions it submits,
* ``operator:<name>``: a client that may read and cancel every session (``mca`` itself on the
  machine that ran ``mca up`` uses ``operator:local``).

The principal is the certificate's common name, ``role:name``. A serving certificate also carries
a DNS name the caller asks for (``server_name``): ``replica.mca`` for every replica (a client
may talk to any of them), ``<digest of the id>.agent.mca`` for an agent (only the leader calls
agents, and it knows which one it means). So an agent's key cannot pose as the coordinator to a
client, nor as another agent to the leader. Addresses do not enter into it (agents listen on
ports picked at start, replicas move between machines), so certificates are not tied to a host.

An ``Identity`` (CA certificate, own certificate and key) is a folder of three PEM files:
``ca.pem``, ``cert.pem``, ``key.pem`` (mode 0600), which is what ``mca credentials issue`` writes
and what the SDK's ``Client`` reads.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.model import name_problem

#: The roles a principal can have, in the certificate's common name ``role:name``.
ROLES = ("replica", "agent", "client", "operator", "monitor")
#: Roles whose certificate may serve (with the DNS name ``server_name`` gives).
SERVING_ROLES = ("replica", "agent")
#: Validity of what the local CA issues, and of the CA itself. Renewed by ``issue`` when an
#: identity has less than ``RENEW_BEFORE`` left.
CERT_DAYS = 365
CA_DAYS = 3650
RENEW_BEFORE = datetime.timedelta(days=30)
#: The folder under data_dir that holds the CA and the identities the embedded default issues.
TLS_FOLDER = "tls"
#: The environment variable naming a credential folder for the SDK and ``mca``.
IDENTITY_ENV = "MCA_IDENTITY"


class CredentialError(ValueError):
    """A credential folder is missing, unreadable or inconsistent; the message says which."""


@dataclass(frozen=True, order=True)
class Principal:
    """An authenticated peer: ``role`` (one of ``ROLES``) and ``name``."""

    role: str
    name: str

    def __str__(self) -> str:
        return f"{self.role}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        role, sep, name = text.partition(":")
        if not sep or role not in ROLES or name_problem(name):
            raise CredentialError(f"not a principal: {text[:80]!r} (expected role:name, role one of {ROLES})")
        return cls(role, name)

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def server_name(principal: Principal) -> str:
    """The DNS name ``principal`` serves under; a caller asks for it by name override. Agent
    ids may hold any printable character, so theirs is a digest (a DNS label of 32 hex digits)."""
    if principal.role == "agent":
        return f"{hashlib.sha256(principal.name.encode()).hexdigest()[:32]}.agent.mca"
    return f"{principal.role}.mca"


#: What a client of the replicas asks for: any replica's certificate.
REPLICA = server_name(Principal("replica", "any"))


@dataclass(frozen=True, repr=False)
class Identity:
    """A principal's credential: its certificate and key, and the CA that vouches for peers."""

    principal: Principal
    ca: bytes
    cert: bytes
    key: bytes

    def __repr__(self) -> str:  # never the key
        return f"Identity({self.principal})"

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS that requires a client certificate from this cluster's CA."""
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True)

    def ssl_server_context(self) -> ssl.SSLContext:
        """The same for a listener that is not gRPC's (``GET /metrics``, the A2A endpoint): TLS
        1.3 as this identity, a client certificate from this cluster's CA required."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.ca.decode())
        with tempfile.TemporaryDirectory() as folder:  # ssl loads a key only from a file
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(self.cert)
            key.touch(mode=0o600)
            key.write_bytes(self.key)
            context.load_cert_chain(cert, key)
        return context

    def channel(self, address: str, server: str = REPLICA) -> grpc.aio.Channel:
        """A TLS channel to ``address``, presenting this identity and accepting only a server
        whose certificate carries the DNS name ``server`` (see ``server_name``)."""
        credentials = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        options = (("grpc.ssl_target_name_override", server),)
        return grpc.aio.secure_channel(address, credentials, options=options)

    def save(self, folder: Path) -> None:
        """Into ``folder``, which must be ours and private (created so when missing)."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        held = folder.stat()
        if held.st_uid != os.getuid():
            raise CredentialError(f"{folder}: belongs to another user; choose a folder of your own")
        os.chmod(folder, 0o700)
        write_file(folder / "ca.pem", self.ca, 0o644)
        write_file(folder / "cert.pem", self.cert, 0o644)
        write_file(folder / "key.pem", self.key, 0o600)

    @classmethod
    def load(cls, folder: str | Path) -> Identity:
        folder = Path(folder)
        try:
            ca, cert, key = ((folder / n).read_bytes() for n in ("ca.pem", "cert.pem", "key.pem"))
        except OSError as exc:
            raise CredentialError(
                f"{folder}: not a credential folder (needs ca.pem, cert.pem, key.pem): {exc.strerror}"
            ) from exc
        try:
            certificate = x509.load_pem_x509_certificate(cert)
        except ValueError as exc:
            raise CredentialError(f"{folder}/cert.pem: not a PEM certificate") from exc
        return cls(principal_of(certificate), ca, cert, key)

    def expires(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.cert).not_valid_after_utc


def principal_of(certificate: x509.Certificate) -> Principal:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CredentialError("the certificate has no single common name")
    return Principal.parse(str(names[0].value))


class Authority:
    """A cluster's CA: its certificate and key, and the identities it issues."""

    def __init__(self, cert: bytes, key: bytes) -> None:
        self.cert = cert
        self._certificate = x509.load_pem_x509_certificate(cert)
        loaded = serialization.load_pem_private_key(key, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CredentialError("the CA key must be an elliptic-curve key")
        self._key = loaded

    @classmethod
    def open(cls, folder: Path, now: datetime.datetime | None = None) -> Authority:
        """The CA in ``folder`` (``ca.pem``, ``ca.key``), created there on first use."""
        cert_path, key_path = folder / "ca.pem", folder / "ca.key"
        if cert_path.exists() and key_path.exists():
            return cls(cert_path.read_bytes(), key_path.read_bytes())
        now = now or datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mca cluster CA {os.urandom(4).hex()}")])
        cert = (
            _builder(name, name, key.public_key(), now, CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )  # key_cert_sign, crl_sign
            .sign(key, hashes.SHA256())
        )
        private_folder(folder)
        write_file(key_path, _key_pem(key), 0o600)
        write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(cert_path.read_bytes(), key_path.read_bytes())

    def issue(self, principal: Principal, now: datetime.datetime | None = None) -> Identity:
        """A new key and certificate for ``principal``, signed by this CA."""
        now = now or datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(principal))])
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = _builder(subject, self._certificate.subject, key.public_key(), now, CERT_DAYS)
        if principal.role in SERVING_ROLES:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(server_name(principal))]), critical=False
            )
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Identity(principal, self.cert, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def kept(self, folder: Path, principal: Principal, now: datetime.datetime | None = None) -> Identity:
        """``principal``'s identity saved in ``folder``, issued (again) when it is missing, from
        another CA, or close to expiry."""
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            identity = Identity.load(folder)
            if identity.principal == principal and identity.ca == self.cert and identity.expires() - now > RENEW_BEFORE:
                return identity
        except CredentialError:
            pass
        identity = self.issue(principal, now)
        identity.save(folder)
        return identity


def identity_in(folder: Path, principal: Principal) -> Identity:
    """``principal``'s identity from the credential folder (cluster.yaml ``tls.folder``,
    ``data_dir/tls`` by default). With the CA's key there (``ca.key``; created with the CA on
    first use in an empty folder), it is issued as needed and kept in ``<role>-<name>``. With
    only a CA certificate (your own PKI keeps its key elsewhere), that folder must already hold
    the identity, issued by your PKI with the common name ``role:name`` and ``server_name``."""
    own = folder / _folder_name(principal)
    if (folder / "ca.pem").exists() and not (folder / "ca.key").exists():
        identity = Identity.load(own)
        if identity.principal != principal:
            raise CredentialError(f"{own}: the certificate is {identity.principal}'s, not {principal}'s")
        return identity
    return Authority.open(folder).kept(own, principal)


def _folder_name(principal: Principal) -> str:
    """``role-name``, or ``role-<digest>`` for a name that is not a safe file name."""
    name = principal.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        name = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{principal.role}-{name}"


def identity_from_env() -> Identity:
    """The identity in the folder ``$MCA_IDENTITY`` names."""
    folder = os.environ.get(IDENTITY_ENV)
    if not folder:
        raise CredentialError(
            f"no credentials: pass identity= (a folder from `mca credentials issue`, or an Identity), "
            f"or set {IDENTITY_ENV} to such a folder"
        )
    return Identity.load(folder)


def private_folder(path: Path) -> None:
    """``path`` created if missing and made readable by us only. Everything under the data folder
    inherits this protection: pysyncobj writes its journal (the ledger: owners, payloads,
    results), the stores and the agents their files mode 0644."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of the peers differ a little
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically with ``mode`` from the start: a reader sees all of it or no file. The
    temporary file is created anew (``O_EXCL``) and never through a link (``O_NOFOLLOW``), so a
    file or link someone else planted cannot receive a key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


__all__: Sequence[str] = (
    "Authority",
    "CredentialError",
    "Identity",
    "Principal",
    "identity_from_env",
    "identity_in",
)

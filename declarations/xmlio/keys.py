"""Key pairs and self-signed certificates for the signature profile.

Trust in this engine does not come from a certificate authority: a
certificate is trusted for a sender (or an institution) when its SHA-256
fingerprint is registered for it in the directory. A self-signed certificate
is therefore all a signer needs, and this module makes them: RSA 2048 or EC
P-256, the two key types the profile (``channels.md``) allows.

The private key is written as unencrypted PKCS#8 PEM (what ``xmlsec1
--privkey-pem`` and ``openssl`` read without a passphrase prompt), the
certificate as PEM.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyType = Literal["ec", "rsa"]

ENGINE_KEY_FILE = "engine-key.pem"
ENGINE_CERT_FILE = "engine-cert.pem"
ENGINE_COMMON_NAME = "Declaration engine"
ENGINE_VALIDITY_DAYS = 3652  # ten years


def _as_utc(moment: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.timezone.utc)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def generate_key(key_type: KeyType = "ec", *, rsa_bits: int = 2048):
    """A new private key: EC P-256 or RSA (2048 bits unless told otherwise)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ValueError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def self_signed_certificate(
    key,
    common_name: str,
    *,
    not_before: dt.datetime | dt.date,
    not_after: dt.datetime | dt.date,
) -> x509.Certificate:
    """A self-signed end-entity certificate for ``key`` (a signing key, not a CA).

    A ``date`` bound means midnight UTC of that day; for ``not_after`` pass
    the last instant you want (``make_keys.py`` uses 23:59:59 of the last day).
    """
    start, end = _as_utc(not_before), _as_utc(not_after)
    if end <= start:
        raise ValueError("not_after must be later than not_before")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def private_key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_self_signed(
    common_name: str,
    *,
    key_type: KeyType = "ec",
    not_before: dt.datetime | dt.date,
    not_after: dt.datetime | dt.date,
) -> tuple[bytes, bytes]:
    """A new key pair and its self-signed certificate: ``(key_pem, cert_pem)``.

    ``key_type`` is ``"ec"`` (P-256) or ``"rsa"`` (2048 bits).
    """
    key = generate_key(key_type)
    cert = self_signed_certificate(key, common_name, not_before=not_before, not_after=not_after)
    return private_key_pem(key), certificate_pem(cert)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)  # in case the umask or an odd file system had a say


def ensure_engine_key(home: Path) -> tuple[Path, Path]:
    """The engine's own signing key and certificate under ``home``, made if absent.

    Returns ``(key_path, cert_path)``: ``home/engine-key.pem`` (mode 0600) and
    ``home/engine-cert.pem``, an EC P-256 key with a self-signed certificate,
    CN "Declaration engine", valid ten years from now. Existing files are
    left alone; a half pair (one file without the other) is an error rather
    than being silently replaced, since senders may have registered the
    fingerprint of the existing certificate.
    """
    home = Path(home)
    key_path, cert_path = home / ENGINE_KEY_FILE, home / ENGINE_CERT_FILE
    have_key, have_cert = key_path.exists(), cert_path.exists()
    if have_key and have_cert:
        return key_path, cert_path
    if have_key or have_cert:
        present, missing = (key_path, cert_path) if have_key else (cert_path, key_path)
        raise FileExistsError(
            f"{present} exists but {missing} does not; restore the missing file or remove both to make a new pair"
        )
    home.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    key_pem, cert_pem = create_self_signed(
        ENGINE_COMMON_NAME,
        key_type="ec",
        not_before=now - dt.timedelta(minutes=5),  # tolerate a little clock skew at the receiver
        not_after=now + dt.timedelta(days=ENGINE_VALIDITY_DAYS),
    )
    _write_private(key_path, key_pem)
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_bytes(cert_pem)
    os.replace(tmp, cert_path)
    return key_path, cert_path

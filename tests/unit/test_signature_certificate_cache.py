"""The signer-certificate caches of xmlio/signature.py run before the sender is checked against the
directory (S003), so whoever can post fills them: they must not keep what an attacker pads or inflates."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from declarations.xmlio import signature
from declarations.xmlio.signature import fingerprint

KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "keys"


def certificate_der() -> bytes:
    return x509.load_pem_x509_certificate((KEYS / "sender-1001.cert.pem").read_bytes()).public_bytes(Encoding.DER)


def test_the_same_certificate_padded_differently_is_one_cache_entry():
    der = certificate_der()
    text = base64.b64encode(der).decode()
    signature._cached_certificate_text.cache_clear()
    answers = [signature._certificate_text(f"\n{' ' * n}{text[:40]}\n {text[40:]}\t") for n in range(50)]
    assert {fp for _cert, fp in answers} == {fingerprint(x509.load_der_x509_certificate(der))}
    assert signature._cached_certificate_text.cache_info().currsize == 1


def test_an_oversized_certificate_text_is_parsed_but_not_kept():
    # a real certificate cannot be this large, but the parse must still answer (here: refuse) every time
    huge = base64.b64encode(certificate_der() + b"\0" * 20_000).decode()
    signature._cached_certificate_text.cache_clear()
    signature._cached_certificate.cache_clear()
    for _ in range(3):
        try:
            signature._certificate_text(huge)
        except ValueError:
            pass
    assert signature._cached_certificate_text.cache_info().currsize == 0
    assert signature._cached_certificate.cache_info().currsize == 0

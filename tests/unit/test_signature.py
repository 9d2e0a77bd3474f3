"""The signature layer: the profile of channels.md, S001/S002, and the attack corpus."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from declarations.exceptions import SignatureError
from declarations.xmlio import parsing
from declarations.xmlio.keys import create_self_signed, ensure_engine_key
from declarations.xmlio.signature import Signer, VerifiedDocument, fingerprint, verify

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "fixtures" / "demo" / "keys"
ATTACKS = ROOT / "fixtures" / "attacks"

DS = "http://www.w3.org/2000/09/xmldsig#"
DIMONA = "urn:declarations:dimona:v1"
SIG = f"{{{DS}}}Signature"
UTC = dt.timezone.utc

DECLARATION = b"""<Dimona xmlns="urn:declarations:dimona:v1">
  <Header>
    <MessageId>UNIT-0001</MessageId>
    <SenderId>1001</SenderId>
    <CreationDateTime>2025-03-01T09:00:00+01:00</CreationDateTime>
    <Environment>PROD</Environment>
  </Header>
  <!-- a comment: exclusive c14n without comments does not sign it -->
  <Employer>
    <NOSSRegistrationNbr>5123456</NOSSRegistrationNbr>
  </Employer>
  <DimonaIn>
    <INSS>85010112345</INSS>
    <StartingDate>2025-03-03</StartingDate>
    <JointCommissionNbr>200</JointCommissionNbr>
    <WorkerType>OTH</WorkerType>
  </DimonaIn>
</Dimona>"""


def declaration() -> etree._Element:
    return parsing.parse(DECLARATION)


def signer(name: str) -> Signer:
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


@pytest.fixture(scope="module")
def rsa_signer() -> Signer:
    return signer("sender-1001")


@pytest.fixture(scope="module")
def ec_signer() -> Signer:
    return signer("sender-2001")


@pytest.fixture(scope="module", params=["sender-1001", "sender-2001"], ids=["rsa", "ec"])
def any_signer(request) -> Signer:
    return signer(request.param)


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def refused(element, code: str = "S002") -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(element)
    assert caught.value.code == code, str(caught.value)
    return caught.value


def ds(path: str) -> str:
    return "/".join(f"{{{DS}}}{step}" for step in path.split("/"))


# --- round trip ----------------------------------------------------------------------------------

def test_round_trip(any_signer):
    signed = any_signer.sign(declaration())
    result = verify(signed)
    assert isinstance(result, VerifiedDocument)
    assert result.fingerprint == any_signer.fingerprint == fingerprint(any_signer.certificate)
    assert result.certificate == any_signer.certificate
    assert re.fullmatch(r"[0-9a-f]{64}", result.fingerprint)


def test_signed_output_is_in_profile(rsa_signer, ec_signer):
    for s, method in ((rsa_signer, "rsa-sha256"), (ec_signer, "ecdsa-sha256")):
        signed = s.sign(declaration())
        signature = signed[-1]
        assert signature.tag == SIG and signature.prefix == "ds"
        assert len(list(signed.iter(SIG))) == 1
        info = signature.find(ds("SignedInfo"))
        assert info.find(ds("CanonicalizationMethod")).get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
        assert info.find(ds("SignatureMethod")).get("Algorithm") == f"http://www.w3.org/2001/04/xmldsig-more#{method}"
        (reference,) = info.findall(ds("Reference"))
        assert reference.get("URI") == ""
        assert [t.get("Algorithm") for t in reference.iterfind(ds("Transforms/Transform"))] == [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"]
        assert reference.find(ds("DigestMethod")).get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
        der = base64.b64decode(signature.find(ds("KeyInfo/X509Data/X509Certificate")).text)
        assert x509.load_der_x509_certificate(der) == s.certificate


def test_sign_returns_a_new_root_and_leaves_the_input_alone(rsa_signer):
    original = declaration()
    before = etree.tostring(original)
    signed = rsa_signer.sign(original)
    assert signed is not original
    assert etree.tostring(original) == before
    assert signed.getparent() is None


def test_signed_part_has_no_signature_and_equals_the_content(any_signer):
    original = declaration()
    result = verify(any_signer.sign(original))
    assert not list(result.signed.iter(SIG))
    assert c14n(result.signed) == c14n(original)
    assert not list(result.signed.iter(etree.Comment))  # what is not signed is not handed on


def test_signed_part_is_a_tree_of_its_own(rsa_signer):
    received = rsa_signer.sign(declaration())
    result = verify(received)
    assert result.signed.getparent() is None
    assert result.signed.getroottree().getroot() is result.signed
    received.find(f"{{{DIMONA}}}Header/{{{DIMONA}}}MessageId").text = "CHANGED-LATER"
    assert result.signed.findtext(f"{{{DIMONA}}}Header/{{{DIMONA}}}MessageId") == "UNIT-0001"


def test_root_with_an_id_attribute_is_still_signed_with_uri_empty(rsa_signer):
    # signxml would write URI="#d1" for a root carrying Id="d1"; the profile wants URI="".
    doc = declaration()
    doc.set("Id", "d1")
    signed = rsa_signer.sign(doc)
    assert signed.find(ds("Signature/SignedInfo/Reference")).get("URI") == ""
    assert verify(signed).signed.get("Id") == "d1"


def test_sign_refuses_an_element_that_is_already_signed(rsa_signer):
    with pytest.raises(ValueError, match="already carries a ds:Signature"):
        rsa_signer.sign(rsa_signer.sign(declaration()))


def test_signer_refuses_a_key_that_is_not_the_certificates():
    key_pem = (KEYS / "sender-1001.key.pem").read_bytes()
    with pytest.raises(ValueError, match="does not belong"):
        Signer.from_pem(key_pem, (KEYS / "stranger.cert.pem").read_bytes())


def test_signer_exposes_its_certificate(rsa_signer):
    assert rsa_signer.certificate_pem == (KEYS / "sender-1001.cert.pem").read_bytes()
    assert x509.load_pem_x509_certificate(rsa_signer.certificate_pem) == rsa_signer.certificate


def test_verify_is_thread_safe(rsa_signer, ec_signer):
    documents = [s.sign(declaration()) for s in (rsa_signer, ec_signer) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verify, documents * 4))
    assert {r.fingerprint for r in results} == {rsa_signer.fingerprint, ec_signer.fingerprint}


# --- S001 / S002 --------------------------------------------------------------------------------

def test_no_signature_is_s001():
    error = refused(declaration(), "S001")
    assert "not signed" in error.message


def test_a_signature_in_no_namespace_is_no_signature(rsa_signer):
    doc = declaration()
    etree.SubElement(doc, "Signature")
    refused(doc, "S001")


def test_tampered_text_is_s002(any_signer):
    signed = any_signer.sign(declaration())
    signed.find(f"{{{DIMONA}}}DimonaIn/{{{DIMONA}}}INSS").text = "99123199999"
    error = refused(signed)
    assert "changed after it was signed" in error.message


def test_tampered_attribute_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    signed.find(f"{{{DIMONA}}}Header").set("extra", "1")
    refused(signed)


def test_tampered_signed_info_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    # A new digest for content the attacker changed: the signature value no longer matches SignedInfo.
    signed.find(ds("Signature/SignedInfo/Reference/DigestValue")).text = base64.b64encode(b"\0" * 32).decode()
    error = refused(signed)
    assert "signature value does not verify" in error.message


def test_expired_certificate_still_verifies():
    # Dates are the caller's S004 (against the engine's clock), never an S002 here.
    s = signer("sender-3001-expired")
    assert s.certificate.not_valid_after_utc < dt.datetime.now(UTC)
    result = verify(s.sign(declaration()))
    assert result.fingerprint == s.fingerprint


def test_not_yet_valid_certificate_still_verifies():
    key_pem, cert_pem = create_self_signed("Future", key_type="ec", not_before=dt.date(2090, 1, 1),
                                           not_after=dt.date(2095, 1, 1))
    s = Signer.from_pem(key_pem, cert_pem)
    assert verify(s.sign(declaration())).certificate == s.certificate


def test_sha1_message_is_plain_english():
    error = refused(parsing.parse((ATTACKS / "sha1.xml").read_bytes()))
    assert "SHA-1" in error.message and "does not allow" in error.message


def test_enveloping_signature_is_s002(rsa_signer):
    signature = rsa_signer.sign(declaration())[-1]
    refused(signature)


def test_comment_after_the_signature_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    signed.append(etree.Comment("after"))
    assert "not the last child" in refused(signed).message


def test_inclusive_namespaces_parameter_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    transform = signed.findall(ds("Signature/SignedInfo/Reference/Transforms/Transform"))[1]
    etree.SubElement(transform, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList="")
    assert "parameters" in refused(signed).message


def test_two_certificates_in_key_info_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    data = signed.find(ds("Signature/KeyInfo/X509Data"))
    data.append(copy.deepcopy(data[0]))
    assert "2 certificates" in refused(signed).message


def test_unreadable_certificate_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    signed.find(ds("Signature/KeyInfo/X509Data/X509Certificate")).text = "bm90IGEgY2VydGlmaWNhdGU="
    assert "cannot be read" in refused(signed).message


def test_missing_key_info_is_s002(rsa_signer):
    signed = rsa_signer.sign(declaration())
    signature = signed[-1]
    signature.remove(signature.find(ds("KeyInfo")))
    refused(signed)


# --- carriers -----------------------------------------------------------------------------------

ENVELOPE = """<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns="urn:carrier:default" xmlns:x="urn:carrier:x" xmlns:ds="urn:not-the-dsig-namespace"
    xml:lang="fr"><soap:Header><x:Trace>abc</x:Trace></soap:Header><soap:Body>{signed}</soap:Body></soap:Envelope>"""


def test_embedded_in_a_soap_envelope_as_text_then_taken_out(any_signer):
    signed = etree.tostring(any_signer.sign(declaration())).decode()
    envelope = parsing.parse(ENVELOPE.format(signed=signed).encode())
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    inside = body[0]
    # Verified where it stands (its own document: the carrier's namespaces and xml:lang do not count)...
    assert c14n(verify(inside).signed) == c14n(declaration())
    # ...and once taken out and sent on, as a serialized element and as a deep copy.
    assert verify(parsing.parse(etree.tostring(inside))).fingerprint == any_signer.fingerprint
    assert verify(copy.deepcopy(inside)).fingerprint == any_signer.fingerprint


def test_embedded_with_lxml_in_carriers_declaring_the_same_namespaces(any_signer):
    # lxml reconciles namespaces when an element is appended: a carrier that already declares the
    # declaration's default namespace and the ds prefix makes the moved element reuse those.
    signed = any_signer.sign(declaration())
    batch = etree.Element("{urn:declarations:batch:v1}Batch",
                          nsmap={None: DIMONA, "b": "urn:declarations:batch:v1", "ds": DS})
    etree.SubElement(batch, "{urn:declarations:batch:v1}BatchHeader").text = "h"
    batch.append(copy.deepcopy(signed))
    batch.append(any_signer.sign(declaration()))
    reparsed = parsing.parse(etree.tostring(batch))
    for item in reparsed.iterchildren(f"{{{DIMONA}}}Dimona"):
        assert c14n(verify(item).signed) == c14n(declaration())
        assert verify(parsing.parse(etree.tostring(item))).fingerprint == any_signer.fingerprint


def test_signing_an_element_that_sits_in_a_carrier(rsa_signer):
    # The engine may sign an element it built inside a bigger tree; the result is its own document.
    envelope = parsing.parse(ENVELOPE.format(signed=DECLARATION.decode()).encode())
    inside = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    signed = rsa_signer.sign(inside)
    assert signed.getparent() is None and inside.find(SIG) is None
    assert c14n(verify(signed).signed) == c14n(declaration())
    rewrapped = parsing.parse(ENVELOPE.format(signed=etree.tostring(signed).decode()).encode())
    assert verify(rewrapped.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0])


# --- the attack corpus ------------------------------------------------------------------------

def manifest() -> list[tuple[str, str, str]]:
    entries = []
    for line in (ATTACKS / "manifest.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head, _, why = line.partition("#")
        name, code = head.split()
        entries.append((name, code, why.strip()))
    return entries


def test_manifest_lists_every_attack_file_once():
    names = [name for name, _code, _why in manifest()]
    assert len(names) == len(set(names))
    assert set(names) == {p.name for p in ATTACKS.glob("*.xml")}
    assert {code for _name, code, _why in manifest()} <= {"S001", "S002"}


@pytest.mark.parametrize("name,code,why", manifest(), ids=[entry[0] for entry in manifest()])
def test_attack_is_refused(name, code, why):
    error = refused(parsing.parse((ATTACKS / name).read_bytes()), code)
    assert error.message and error.message[0].islower() and "Traceback" not in error.message


def _permissively_valid(root: etree._Element) -> bool:
    """signxml with every algorithm, any location and any number of references allowed."""
    from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier

    signature = next(root.iter(SIG))
    node = signature.find(ds("KeyInfo/X509Data/X509Certificate"))
    cert = x509.load_der_x509_certificate(base64.b64decode(node.text)) if node is not None else None
    config = SignatureConfiguration(
        require_x509=cert is not None, location=".//", expect_references=False,
        signature_methods=frozenset(SignatureMethod), digest_algorithms=frozenset(DigestAlgorithm),
        verification_time=cert.not_valid_before_utc if cert is not None else None,
    )
    try:
        XMLVerifier().verify(etree.tostring(root), x509_cert=cert, expect_config=config)
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.parametrize("name", [n for n, _c, why in manifest() if "(cryptographically valid)" in why])
def test_attack_is_refused_for_the_profile_not_for_its_cryptography(name):
    # These carry sound signatures: only the profile checks stand between them and acceptance.
    assert _permissively_valid(parsing.parse((ATTACKS / name).read_bytes()))


# --- demo keys and keys.py --------------------------------------------------------------------

DEMO = {
    "sender-1001": ("rsa", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "sender-2001": ("ec", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "sender-3001-expired": ("rsa", dt.date(2020, 1, 1), dt.date(2024, 6, 30)),
    "stranger": ("rsa", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "onem": ("ec", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "inami": ("ec", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "onva": ("ec", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
    "fedris": ("ec", dt.date(2024, 1, 1), dt.date(2035, 12, 31)),
}


@pytest.mark.parametrize("name", sorted(DEMO))
def test_demo_key(name):
    kind, first, last = DEMO[name]
    s = signer(name)
    public = s.certificate.public_key()
    if kind == "rsa":
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)
    assert s.certificate.not_valid_before_utc.date() == first
    assert s.certificate.not_valid_after_utc.date() == last
    assert f"`{name}`" in (KEYS / "README.md").read_text() and s.fingerprint in (KEYS / "README.md").read_text()


def test_create_self_signed():
    for kind in ("rsa", "ec"):
        key_pem, cert_pem = create_self_signed("Test", key_type=kind, not_before=dt.date(2024, 1, 1),
                                               not_after=dt.datetime(2030, 1, 1, tzinfo=UTC))
        s = Signer.from_pem(key_pem, cert_pem)
        assert s.certificate.subject.rfc4514_string() == "CN=Test"
        assert s.certificate.not_valid_before_utc == dt.datetime(2024, 1, 1, tzinfo=UTC)
        assert verify(s.sign(declaration())).fingerprint == s.fingerprint
    with pytest.raises(ValueError):
        create_self_signed("Test", key_type="dsa", not_before=dt.date(2024, 1, 1), not_after=dt.date(2025, 1, 1))


def test_ensure_engine_key(tmp_path):
    home = tmp_path / "home"
    key_path, cert_path = ensure_engine_key(home)
    assert (key_path, cert_path) == (home / "engine-key.pem", home / "engine-cert.pem")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    s = Signer.from_files(key_path, cert_path)
    assert isinstance(s.certificate.public_key(), ec.EllipticCurvePublicKey)
    assert s.certificate.subject.rfc4514_string() == "CN=Declaration engine"
    years = (s.certificate.not_valid_after_utc - s.certificate.not_valid_before_utc).days / 365.25
    assert 9.9 < years < 10.1
    # Idempotent: the existing pair is kept (its fingerprint may be registered somewhere).
    assert ensure_engine_key(home) == (key_path, cert_path)
    assert Signer.from_files(key_path, cert_path).fingerprint == s.fingerprint
    cert_path.unlink()
    with pytest.raises(FileExistsError):
        ensure_engine_key(home)

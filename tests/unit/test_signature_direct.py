"""The profile's cryptography done directly (xmlio/signature.py, no signxml in the path): what signxml
used to check on top of the profile walk is still checked, and signxml agrees with both directions."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier

from declarations.exceptions import SignatureError
from declarations.ns import DS
from declarations.xmlio.signature import Signer, verify

KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "keys"
DOC = ('<Doc xmlns="urn:example:doc" xmlns:unused="urn:example:unused">\n  <A note="x &amp; &quot;y&quot;">1 &lt; 2'
       '&#13;</A>\n  <B>\u00e9t\u00e9</B>\n</Doc>')


def ds(path: str) -> str:
    return "/".join(f"{{{DS}}}{step}" for step in path.split("/"))


@pytest.fixture(params=["sender-1001", "sender-2001"], ids=["rsa", "ec"])
def signer(request):
    return Signer.from_files(KEYS / f"{request.param}.key.pem", KEYS / f"{request.param}.cert.pem")


def signed(signer: Signer) -> etree._Element:
    return signer.sign(etree.fromstring(DOC.encode()))


def refused(element) -> SignatureError:
    with pytest.raises(SignatureError) as error:
        verify(element)
    return error.value


def test_signxml_verifies_what_we_sign_and_we_verify_it(signer):
    element = signed(signer)
    data = etree.tostring(element)
    config = SignatureConfiguration(require_x509=True, location="./", expect_references=1,
                                    signature_methods=frozenset({SignatureMethod(signer.signature_method)}),
                                    digest_algorithms=frozenset({DigestAlgorithm.SHA256}))
    theirs = XMLVerifier().verify(data, x509_cert=signer.certificate, expect_config=config)
    ours = verify(etree.fromstring(data))
    assert etree.tostring(ours.signed, method="c14n", exclusive=True) == theirs.signed_data
    assert ours.fingerprint == signer.fingerprint


def test_the_received_element_is_left_as_it_was(signer):
    element = signed(signer)
    before = etree.tostring(element)
    verify(element)
    assert etree.tostring(element) == before


def test_text_after_the_signature_is_signed_content(signer):
    """The enveloped transform removes the Signature element only: a line break after it is content."""
    element = signed(signer)
    element[-1].tail = "\n"
    assert refused(element).code == "S002"  # it was not there when signed


def test_a_key_value_beside_the_certificate_is_refused(signer):
    element = signed(signer)
    key_info = element.find(ds("Signature/KeyInfo"))
    etree.SubElement(key_info, f"{{{DS}}}KeyValue")
    error = refused(element)
    assert error.code == "S002" and "KeyValue" in error.message


def test_a_signature_value_that_is_not_base64_is_refused(signer):
    element = signed(signer)
    element.find(ds("Signature/SignatureValue")).text = "not*base64"
    assert refused(element).code == "S002"


def test_a_truncated_signature_value_is_refused(signer):
    element = signed(signer)
    value = element.find(ds("Signature/SignatureValue"))
    value.text = base64.b64encode(base64.b64decode(value.text)[:-1]).decode()
    error = refused(element)
    assert error.code == "S002" and "signature value does not verify" in error.message


def test_an_element_inside_a_carrier_is_verified_as_its_own_document(signer):
    carrier = etree.fromstring(b'<Carrier xmlns="urn:example:carrier" xmlns:x="urn:x"><x:Other/></Carrier>')
    carrier.append(copy.deepcopy(signed(signer)))
    carrier[-1].tail = "\n  "
    assert verify(carrier[-1]).fingerprint == signer.fingerprint

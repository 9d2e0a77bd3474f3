"""``verify(element, owned=True)``: a tree the caller parsed for the check alone is verified in place (no
copy) and, when it holds no comment, is itself the signed content (no second parse of the canonical form).
Oracle: the copying path, which always reads the canonical form parsed again."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from declarations.exceptions import SignatureError
from declarations.services.examine import examine
from declarations.xmlio import parsing
from declarations.xmlio.signature import Signer, verify

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "fixtures" / "demo" / "keys"
DOCUMENTS = sorted((ROOT / "fixtures" / "cases").rglob("*.xml")) + sorted((ROOT / "fixtures" / "attacks").glob("*.xml"))
ODD = ('<Doc xmlns="urn:example:doc" xmlns:unused="urn:example:unused">\n  <A note="x &amp; &quot;y&quot;\t&#10;">'
       '1 &lt; 2&#13;</A>\n  <B>\u00e9t\u00e9<![CDATA[ <raw> ]]></B><?pi data?>\n</Doc>')


def outcome(data: bytes, *, owned: bool):
    """What verify gives for ``data``: the refusal, or the digest, signer and canonical signed content."""
    element = parsing.parse(data)
    try:
        verified = verify(element, owned=owned)
    except SignatureError as error:
        return ("refused", error.code, error.message)
    return ("verified", verified.content_sha256, verified.fingerprint,
            etree.tostring(verified.signed, method="c14n", exclusive=True), _reading(verified.signed))


def _reading(element: etree._Element) -> list:
    """What a reader of the tree sees: tags, attributes, text and tails, in document order."""
    return [(e.tag, sorted(e.attrib.items()) if isinstance(e.tag, str) else None, e.text, e.tail)
            for e in element.iter()]


@pytest.fixture(params=["sender-1001", "sender-2001"], ids=["rsa", "ec"])
def signer(request):
    return Signer.from_files(KEYS / f"{request.param}.key.pem", KEYS / f"{request.param}.cert.pem")


def test_every_fixture_and_attack_gets_the_same_answer_in_place():
    verified = 0
    for path in DOCUMENTS:
        data = path.read_bytes()
        try:
            parsing.parse(data)
        except Exception:  # noqa: BLE001 -- not well-formed, a DOCTYPE: never reaches verify
            continue
        copied, in_place = outcome(data, owned=False), outcome(data, owned=True)
        assert in_place == copied, path
        verified += copied[0] == "verified"
    assert verified > 100


def test_a_tree_without_comment_is_the_signed_content_itself(signer):
    element = parsing.parse(etree.tostring(signer.sign(etree.fromstring(ODD.encode()))))
    verified = verify(element, owned=True)
    assert verified.signed is element
    assert element.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None  # removed in place
    assert _reading(verified.signed) == _reading(verify(parsing.parse(
        etree.tostring(signer.sign(etree.fromstring(ODD.encode()))))).signed)


def test_a_comment_makes_it_read_the_canonical_form_again(signer):
    with_comment = ODD.replace("1 &lt; 2", "1 &lt;<!-- a comment --> 2")
    data = etree.tostring(signer.sign(etree.fromstring(with_comment.encode())))
    element = parsing.parse(data)
    verified = verify(element, owned=True)
    assert verified.signed is not element
    text = verified.signed.find("{urn:example:doc}A").text
    assert text == "1 < 2\r"  # the canonical form has no comment: the text around it is one
    assert element.find("{urn:example:doc}A").text == "1 <"  # what the tree alone would have read
    assert outcome(data, owned=True) == outcome(data, owned=False)


def test_an_element_inside_a_carrier_is_copied_even_when_owned(signer):
    carrier = etree.fromstring(b'<Carrier xmlns="urn:example:carrier"/>')
    carrier.append(signer.sign(etree.fromstring(ODD.encode())))
    verified = verify(carrier[0], owned=True)
    assert verified.signed is not carrier[0]
    assert carrier[0][-1].tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"  # left as it was


@pytest.mark.parametrize("change", ["none", "xsd", "signature", "comment"])
def test_examine_of_bytes_reports_what_examine_of_an_element_reports(change):
    """examine(data) owns its tree (XSD first, then verify in place); examine(data, element=...) copies."""
    signer = Signer.from_files(KEYS / "sender-1001.key.pem", KEYS / "sender-1001.cert.pem")
    document = parsing.parse((ROOT / "fixtures" / "cases" / "dmfa" / "m001-current-quarter.xml").read_bytes())
    document.remove(document[-1])  # its Signature: signed again below, after the change
    quarter = document.find("{urn:declarations:dmfa:v1}Quarter")
    if change == "xsd":  # signed, but not what the XSD allows: C005 after a sound signature
        quarter.addnext(etree.Element("{urn:declarations:dmfa:v1}Unknown"))
    elif change == "comment":
        quarter.addnext(etree.Comment(" written by hand "))
    data = etree.tostring(signer.sign(document))
    if change == "signature":
        data = data.replace(b"<ds:SignatureValue>", b"<ds:SignatureValue>AAAA", 1)
    owned = examine(data, max_bytes=1 << 24)
    given = examine(data, max_bytes=1 << 24, element=parsing.parse(data))
    assert [(a.code, a.message) for a in owned.refusal] == [(a.code, a.message) for a in given.refusal]
    assert [(a.code, a.message, a.location) for a in owned.xsd] == [(a.code, a.message, a.location) for a in given.xsd]
    assert owned.content_sha256 == given.content_sha256
    assert owned.header == given.header
    assert owned.declaration == given.declaration
    assert {"none": owned.declaration is not None, "comment": owned.declaration is not None,
            "xsd": [a.code for a in owned.xsd] == ["C005"],
            "signature": [a.code for a in owned.refusal] == ["S002"]}[change]


@pytest.mark.parametrize("owned", [False, True])
def test_content_that_cannot_be_canonicalized_is_refused_not_a_crash(owned):
    """libxml2 refuses to canonicalize a relative namespace URI: such a document cannot carry a signature
    in the profile (S002), however it is handed to verify."""
    data = (ROOT / "fixtures" / "cases" / "dmfa" / "m001-current-quarter.xml").read_bytes()
    data = data.replace(b'<DmfA xmlns="urn:declarations:dmfa:v1">', b'<DmfA xmlns="relative/dmfa">', 1)
    with pytest.raises(SignatureError, match="exclusive canonical form") as refused:
        verify(parsing.parse(data), owned=owned)
    assert refused.value.code == "S002"
    assert [a.code for a in examine(data, max_bytes=1 << 24).refusal] == ["S002"]

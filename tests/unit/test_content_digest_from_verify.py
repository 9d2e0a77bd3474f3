"""``examine`` takes the content digest from ``verify`` (VerifiedDocument.content_sha256) instead of a second
exclusive c14n of the signed content: the two must agree on every signed document the engine reads."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
from lxml import etree

from declarations.exceptions import SignatureError
from declarations.services.examine import examine
from declarations.xmlio.signature import Signer, verify

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "fixtures" / "demo" / "keys"
CASES = sorted((ROOT / "fixtures" / "cases").rglob("*.xml"))
ODD = ('<Doc xmlns="urn:example:doc" xmlns:unused="urn:example:unused">\n  <A note="x &amp; &quot;y&quot;\t&#10;">'
       '1 &lt; 2&#13;</A><!-- a comment -->\n  <B>\u00e9t\u00e9<![CDATA[ <raw> ]]></B><?pi data?>\n</Doc>')


@pytest.fixture(params=["sender-1001", "sender-2001"], ids=["rsa", "ec"])
def signer(request):
    return Signer.from_files(KEYS / f"{request.param}.key.pem", KEYS / f"{request.param}.cert.pem")


def content_digest(signed) -> str:
    """The definition: SHA-256 of the exclusive canonical form of the signed content, computed again."""
    return hashlib.sha256(etree.tostring(signed, method="c14n", exclusive=True)).hexdigest()


def test_the_fixture_cases_digest_is_the_second_c14n_digest():
    checked = 0
    for path in CASES:
        try:
            verified = verify(etree.parse(str(path)).getroot())
        except (SignatureError, etree.XMLSyntaxError):
            continue
        assert verified.content_sha256 == content_digest(verified.signed), path
        checked += 1
    assert checked > 100


def test_odd_content_inside_a_carrier(signer):
    carrier = etree.fromstring(b'<Carrier xmlns="urn:example:carrier" xmlns:x="urn:x"><x:Other/></Carrier>')
    carrier.append(copy.deepcopy(signer.sign(etree.fromstring(ODD.encode()))))
    carrier[-1].tail = "\n  "
    verified = verify(carrier[-1])
    assert len(verified.content_sha256) == 64
    assert verified.content_sha256 == content_digest(verified.signed)


def test_examine_reports_the_same_digest(signer):
    data = etree.tostring(signer.sign(etree.fromstring(ODD.encode())))
    examined = examine(data, max_bytes=1 << 20)
    assert examined.content_sha256 == content_digest(examined.verified.signed)

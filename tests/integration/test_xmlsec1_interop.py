"""Interoperability of the signature profile with the reference C implementation, ``xmlsec1``.

A sender's software is as likely to be built on xmlsec (C, PHP, Python
``xmlsec``, .NET ports of it) as on signxml, so both directions are checked
with the real command line:

(a) ``xmlsec1 --sign`` fills a template with the profile's SignedInfo
    (exclusive c14n, enveloped + exclusive c14n transforms, rsa-sha256 or
    ecdsa-sha256, sha256 digest, X509Data) and our ``verify`` accepts it;
(b) our ``Signer.sign`` output passes ``xmlsec1 --verify --trusted-pem CERT``;
(c) a tampered document fails in both.

xmlsec1 1.2.x needs no ``--id-attr`` (``URI=""`` resolves without ID
attributes) and has no ``--lax-key-search`` (a 1.3 option). With the
signer's self-signed certificate as ``--trusted-pem``, the certificate in
KeyInfo verifies as its own trust anchor, which is this engine's trust model.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from declarations.exceptions import SignatureError
from declarations.xmlio import parsing
from declarations.xmlio.signature import Signer, verify

XMLSEC1 = shutil.which("xmlsec1")
if XMLSEC1 is None:
    pytest.skip("the xmlsec1 command is not installed (apt-get install xmlsec1)", allow_module_level=True)

KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "keys"

METHODS = {
    "rsa": ("sender-1001", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
    "ec": ("sender-2001", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
}

CONTENT = """<Dimona xmlns="urn:declarations:dimona:v1">
  <Header>
    <MessageId>XMLSEC-0001</MessageId>
    <SenderId>1001</SenderId>
    <CreationDateTime>2025-03-01T09:00:00+01:00</CreationDateTime>
    <Environment>PROD</Environment>
  </Header>
  <Employer>
    <NOSSRegistrationNbr>5123456</NOSSRegistrationNbr>
  </Employer>
  <DimonaIn>
    <INSS>85010112345</INSS>
    <StartingDate>2025-03-03</StartingDate>
    <JointCommissionNbr>200</JointCommissionNbr>
    <WorkerType>OTH</WorkerType>
  </DimonaIn>
{signature}</Dimona>
"""

TEMPLATE = """  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="{method}"/>
      <ds:Reference URI="">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
    <ds:KeyInfo>
      <ds:X509Data>
        <ds:X509Certificate/>
      </ds:X509Data>
    </ds:KeyInfo>
  </ds:Signature>
"""


def key_files(name: str) -> tuple[Path, Path]:
    return KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem"


def xmlsec1_sign(template: Path, out: Path, name: str) -> None:
    key, cert = key_files(name)
    run = subprocess.run(
        [XMLSEC1, "--sign", "--privkey-pem", f"{key},{cert}", "--output", str(out), str(template)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr


def xmlsec1_verify(path: Path, cert: Path) -> subprocess.CompletedProcess:
    """The strict form: the KeyInfo certificate must chain to CERT, only X509 key data, only URI=""."""
    return subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(cert), "--enabled-key-data", "x509",
         "--enabled-reference-uris", "empty", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def content_c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_xmlsec1_signs_we_verify(tmp_path, kind):
    name, method = METHODS[kind]
    template = tmp_path / "template.xml"
    template.write_text(CONTENT.format(signature=TEMPLATE.format(method=method)), encoding="utf-8")
    signed = tmp_path / "signed.xml"
    xmlsec1_sign(template, signed, name)

    verified = verify(parsing.parse(signed.read_bytes()))
    signer_cert = Signer.from_files(*key_files(name))
    assert verified.fingerprint == signer_cert.fingerprint
    # What is vouched for is the content without the signature (the whitespace around it included).
    assert content_c14n(verified.signed) == content_c14n(
        etree.fromstring(CONTENT.format(signature="  \n").encode()))

    # ...and xmlsec1 agrees with itself, as a control.
    assert xmlsec1_verify(signed, key_files(name)[1]).returncode == 0


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_we_sign_xmlsec1_verifies(tmp_path, kind):
    name, _method = METHODS[kind]
    signer = Signer.from_files(*key_files(name))
    signed = tmp_path / "ours.xml"
    signed.write_bytes(etree.tostring(signer.sign(etree.fromstring(CONTENT.format(signature="").encode())),
                                      xml_declaration=True, encoding="UTF-8"))
    run = xmlsec1_verify(signed, key_files(name)[1])
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout + run.stderr

    # Pinning is real: another trusted certificate does not make it verify.
    other = xmlsec1_verify(signed, key_files("onem" if kind == "rsa" else "sender-1001")[1])
    assert other.returncode != 0


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_tampered_is_refused_by_both(tmp_path, kind):
    name, method = METHODS[kind]
    # One signed by xmlsec1, one by us: both tampered the same way.
    template = tmp_path / "template.xml"
    template.write_text(CONTENT.format(signature=TEMPLATE.format(method=method)), encoding="utf-8")
    by_xmlsec1 = tmp_path / "by-xmlsec1.xml"
    xmlsec1_sign(template, by_xmlsec1, name)
    by_us = tmp_path / "by-us.xml"
    signer = Signer.from_files(*key_files(name))
    by_us.write_bytes(etree.tostring(signer.sign(etree.fromstring(CONTENT.format(signature="").encode()))))

    for path in (by_xmlsec1, by_us):
        tampered = path.with_suffix(".tampered.xml")
        data = path.read_bytes()
        assert b"<INSS>85010112345</INSS>" in data
        tampered.write_bytes(data.replace(b"<INSS>85010112345</INSS>", b"<INSS>99123199999</INSS>"))

        run = xmlsec1_verify(tampered, key_files(name)[1])
        assert run.returncode != 0, f"xmlsec1 accepted {tampered.name}"
        with pytest.raises(SignatureError) as refused:
            verify(parsing.parse(tampered.read_bytes()))
        assert refused.value.code == "S002"
        assert "changed after it was signed" in refused.value.message

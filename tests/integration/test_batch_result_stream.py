"""The streamed BatchResult (xmlio/batch_xml.write_result): written in canonical form and signed while
written. It must verify as any signed document of the profile does: with our ``verify``, with signxml
and with the reference C implementation, ``xmlsec1`` -- including a large result with thousands of
anomalies and text and attributes that exclusive c14n escapes (&, <, >, carriage returns, quotes,
tabs, non-ASCII)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier

from declarations import ns
from declarations.domain.anomalies import Anomaly, Severity
from declarations.domain.outcome import Outcome
from declarations.exceptions import SignatureError
from declarations.services.batch import process_inbox_once
from declarations.xmlio import batch_xml, parsing, schemas
from declarations.xmlio.results import result_element, to_bytes
from declarations.xmlio.signature import Signer, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import batch as gen  # noqa: E402

XMLSEC1 = shutil.which("xmlsec1")
KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "keys"
R = ns.RESULT
NASTY = 'a & b < c > d\r\n"quoted" \'single\'\ttab é ü 日本 \u20ac ]]> end'


def signers() -> dict[str, Signer]:
    return {kind: Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")
            for kind, name in (("rsa", "sender-1001"), ("ec", "sender-2001"))}


def stored_result(signer: Signer, declaration_id: int, anomalies: int, *, attribute: bool = False) -> bytes:
    """A signed DeclarationResult as the pipeline stores it, with ``anomalies`` warnings full of characters
    that canonicalization escapes."""
    outcome = Outcome(declaration_id=declaration_id, received_at=dt.datetime(2025, 11, 15, 10, tzinfo=dt.timezone.utc),
                      anomalies=tuple(Anomaly("M010", Severity.WARNING, f"{NASTY} #{i}", f"/DmfA/NaturalPerson[{i}]")
                                      for i in range(anomalies)),
                      message_id=f"m-{declaration_id}", sender_id="2001", kind="DMFA", environment="PROD")
    element = result_element(outcome)
    if attribute:  # not in the result XSD, but c14n must still come out right: attribute escaping
        element[0].set("note", NASTY)
        element[0].set("a", "first")
    return to_bytes(signer.sign(element))


def write(signer: Signer, results: list[bytes]) -> bytes:
    counts: dict[str, int] = {}
    for data in results:
        status = parsing.parse(data).findtext(f"{{{R}}}Status")
        counts[status] = counts.get(status, 0) + 1
    out = io.BytesIO()
    batch_xml.write_result(out, signer=signer, batch_id="B-stream", file_name="lot.xml", file_sha256="ab" * 32,
                           counts=counts, signed_results=iter(results))
    return out.getvalue()


def signxml_verifies(data: bytes, signer: Signer) -> bytes:
    config = SignatureConfiguration(
        require_x509=True, location="./", expect_references=1,
        signature_methods=frozenset({SignatureMethod(signer.signature_method)}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}))
    return XMLVerifier().verify(data, x509_cert=signer.certificate, expect_config=config).signed_data


def xmlsec1_verify(path: Path, cert_pem: bytes, tmp_path: Path) -> subprocess.CompletedProcess:
    cert = tmp_path / "engine.cert.pem"
    cert.write_bytes(cert_pem)
    return subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(cert), "--enabled-key-data", "x509",
         "--enabled-reference-uris", "empty", str(path)],
        capture_output=True, text=True, timeout=120)


def check_everywhere(data: bytes, signer: Signer, tmp_path: Path) -> etree._Element:
    root = parsing.parse(data)
    verified = verify(root)
    assert verified.fingerprint == signer.fingerprint
    assert root[-1].tag == f"{{{ns.DS}}}Signature"
    # signxml's independent reading of the same bytes, and its signed content equals ours.
    assert signxml_verifies(data, signer) == etree.tostring(verified.signed, method="c14n", exclusive=True)
    if XMLSEC1 is not None:
        path = tmp_path / "result.xml"
        path.write_bytes(data)
        run = xmlsec1_verify(path, signer.certificate_pem, tmp_path)
        assert run.returncode == 0, run.stderr
    return verified.signed


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_streamed_result_verifies_with_us_signxml_and_xmlsec1(kind, tmp_path):
    signer = signers()[kind]
    results = [stored_result(signer, 1, 3), stored_result(signer, 2, 0), stored_result(signer, 3, 5, attribute=True)]
    data = write(signer, results)
    signed = check_everywhere(data, signer, tmp_path)
    # The content is the stored results, their own signatures removed, in order, text intact.
    items = list(signed.iterchildren(f"{{{R}}}DeclarationResult"))
    assert [i.findtext(f"{{{R}}}DeclarationId") for i in items] == ["1", "2", "3"]
    assert items[0].find(f"{{{R}}}Anomaly").findtext(f"{{{R}}}Message") == f"{NASTY} #0"
    assert items[2][0].get("note") == NASTY
    assert not list(signed.iter(f"{{{ns.DS}}}Signature"))
    assert signed.findtext(f"{{{R}}}AcceptedWithWarnings") == "2" and signed.findtext(f"{{{R}}}Accepted") == "1"


def test_the_written_bytes_are_the_canonical_form(tmp_path):
    """What was digested is exactly what is in the file (less the XML declaration and the Signature)."""
    signer = signers()["ec"]
    data = write(signer, [stored_result(signer, 7, 4, attribute=True)])
    root = parsing.parse(data)
    root.remove(root[-1])
    canonical = etree.tostring(root, method="c14n", exclusive=True)
    start = data.index(b"<BatchResult")
    signature_at = data.index(b"<ds:Signature")
    assert data[start:signature_at] + b"</BatchResult>" == canonical


def test_a_large_result_with_many_anomalies_verifies_everywhere(tmp_path):
    signer = signers()["rsa"]
    results = [stored_result(signer, n, 2_000, attribute=n % 2 == 0) for n in range(1, 11)]  # 20,000 anomalies
    data = write(signer, results)
    assert len(data) > 4_000_000
    signed = check_everywhere(data, signer, tmp_path)
    assert len(signed.findall(f"{{{R}}}DeclarationResult/{{{R}}}Anomaly")) == 20_000


def test_a_changed_byte_anywhere_is_refused(tmp_path):
    signer = signers()["ec"]
    data = write(signer, [stored_result(signer, 1, 3), stored_result(signer, 2, 3)])
    tampered = data.replace(b"<DeclarationId>2</DeclarationId>", b"<DeclarationId>9</DeclarationId>")
    assert tampered != data
    with pytest.raises(SignatureError) as refused:
        verify(parsing.parse(tampered))
    assert refused.value.code == "S002"
    if XMLSEC1 is not None:
        path = tmp_path / "tampered.xml"
        path.write_bytes(tampered)
        assert xmlsec1_verify(path, signer.certificate_pem, tmp_path).returncode != 0


def test_counts_that_do_not_match_the_items_are_a_bug_not_an_answer():
    signer = signers()["ec"]
    with pytest.raises(ValueError):
        batch_xml.write_result(io.BytesIO(), signer=signer, batch_id="B", file_name="f.xml", file_sha256="0" * 64,
                               counts={"ACCEPTED": 5}, signed_results=[stored_result(signer, 1, 1)])


def test_the_inbox_result_of_a_batch_with_many_warnings_verifies_everywhere(app, tmp_path):
    """End to end: DmfAs whose every worker gets an M010 warning, through the inbox; the NAME.result.xml
    in the outbox is XSD-valid and verifies with us, signxml and xmlsec1 (the engine's own key)."""
    import dataclasses

    from declarations.bootstrap import App

    settings = dataclasses.replace(app.settings, inbox=tmp_path / "inbox", outbox=tmp_path / "outbox",
                                   archive=tmp_path / "archive")
    box = App(settings)
    box.__dict__["signer"] = app.signer
    try:
        items = list(gen.dmfa_items(gen.signer_2001(), 600, 200, prefix="stream"))
        data = gen.batch_bytes(batch_id="B-warn", items=items)
        gen.put(settings.inbox, "warn", data)
        (summary,) = process_inbox_once(box)
        assert summary.outcome == "DONE" and summary.counts["accepted_with_warnings"] == 3
        result = (settings.outbox / "warn.result.xml").read_bytes()
        assert result == (settings.archive / f"{hashlib.sha256(data).hexdigest()}.result.xml").read_bytes()
        root = parsing.parse(result)
        assert schemas.problems(root) == []
        signed = check_everywhere(result, app.signer, tmp_path)
        assert len(signed.findall(f"{{{R}}}DeclarationResult/{{{R}}}Anomaly[{{{R}}}Code='M010']")) == 600

        # A retry (the same bytes under another NAME) gets the same result, byte for byte.
        gen.put(settings.inbox, "again", data)
        (retry,) = process_inbox_once(box)
        assert retry.outcome == "RETRY"
        assert (settings.outbox / "again.result.xml").read_bytes() == result
    finally:
        box.close()

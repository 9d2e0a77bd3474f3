"""node-soap (JavaScript) as an independent client: built from the served WSDL, it submits a signed Dimona.

``npm install`` runs into tests/e2e/node/ when node_modules is missing (the
versions are pinned by package-lock.json). Without node, or when npm cannot
install, the test is skipped, except on CI where it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from declarations import samples
from declarations.channels.soap.harness import Server
from declarations.xmlio import parsing
from declarations.xmlio.signature import Signer, fingerprint, verify

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"
RES = "urn:declarations:result:v1"
LK = "urn:declarations:lookup:v1"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node_client() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node/npm not installed (scripts/setup.sh installs them)")
    if not (NODE_DIR / "node_modules" / "soap").is_dir():
        installed = subprocess.run([npm, "ci" if (NODE_DIR / "package-lock.json").exists() else "install",
                                    "--no-audit", "--no-fund", "--loglevel=error"],
                                   cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        if installed.returncode != 0:
            _unavailable(f"npm could not install node-soap: {installed.stderr[-2000:]}")
    return [node, str(NODE_DIR / "client.js")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("soap-node"), now=NOW) as running:
        yield running


def call(node_client, server, operation: str, element: etree._Element, tmp_path: Path) -> dict:
    path = tmp_path / f"{operation}.xml"
    path.write_bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))
    done = subprocess.run([*node_client, f"{server.url}?wsdl", operation, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def signer(name: str) -> Signer:
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


def test_node_soap_submits_a_dimona_and_reads_the_signed_result(node_client, server, tmp_path):
    hire = samples.dimona("In", message_id="node-in", sender_id="1001", noss="123456749",
                          INSS=samples.valid_inss(61), StartingDate=dt.date(2025, 11, 16), JointCommissionNbr="200",
                          WorkerType="OTH")
    answer = call(node_client, server, "SubmitDimona", signer("sender-1001").sign(hire), tmp_path)
    parsed = answer["result"]["DeclarationResult"]
    assert parsed["Status"] == "ACCEPTED" and parsed["Kind"] == "DIMONA" and parsed["MessageId"] == "node-in"
    envelope = parsing.parse(answer["raw"].encode())
    result = envelope.find(f".//{{{RES}}}DeclarationResult")
    engine = x509.load_pem_x509_certificate((server.home / "engine-cert.pem").read_bytes())
    verified = verify(result)
    assert verified.fingerprint == fingerprint(engine)
    assert verified.signed.findtext(f"{{{RES}}}DeclarationId") == str(parsed["DeclarationId"])

    # ... and asks for it again, by its MessageId, with a signed request
    request = etree.Element(f"{{{LK}}}DeclarationResultRequest", nsmap={None: LK})
    for name, value in (("SenderId", "1001"), ("MessageId", "node-get"), ("DeclarationMessageId", "node-in")):
        etree.SubElement(request, f"{{{LK}}}{name}").text = value
    again = call(node_client, server, "GetDeclarationResult", signer("sender-1001").sign(request), tmp_path)
    stored = parsing.parse(again["raw"].encode()).find(f".//{{{RES}}}DeclarationResult")
    assert verify(stored).signed.findtext(f"{{{RES}}}DeclarationId") == str(parsed["DeclarationId"])

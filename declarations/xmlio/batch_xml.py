"""BatchAck and BatchResult documents (urn:declarations:result:v1, channels.md).

Built unsigned here; the batch service signs them with the engine's key.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from lxml import etree

from declarations import ns
from declarations.xmlio.parsing import parse
from declarations.xmlio.results import add_text, xml_datetime

R = ns.RESULT
_SIGNATURE = f"{{{ns.DS}}}Signature"


def ack_element(*, batch_id: str | None, file_name: str, file_sha256: str, received_at: dt.datetime,
                code: str | None = None, message: str | None = None) -> etree._Element:
    root = etree.Element(f"{{{R}}}BatchAck", nsmap={None: R})
    add_text(root, "BatchId", batch_id)
    add_text(root, "FileName", file_name)
    add_text(root, "FileSha256", file_sha256)
    add_text(root, "ReceivedAt", xml_datetime(received_at))
    add_text(root, "Status", "FILE_REFUSED" if code else "RECEIVED")
    add_text(root, "Code", code)
    add_text(root, "Message", message)
    return root


def result_element(*, batch_id: str, file_name: str, file_sha256: str,
                   signed_results: Iterable[bytes]) -> etree._Element:
    """The unsigned BatchResult: each stored, signed DeclarationResult without its Signature, in order."""
    root = etree.Element(f"{{{R}}}BatchResult", nsmap={None: R})
    add_text(root, "BatchId", batch_id)
    add_text(root, "FileName", file_name)
    add_text(root, "FileSha256", file_sha256)
    counts = {status: add_text(root, name, 0) for status, name in (
        ("ACCEPTED", "Accepted"), ("ACCEPTED_WITH_WARNINGS", "AcceptedWithWarnings"), ("REFUSED", "Refused"))}
    tally = dict.fromkeys(counts, 0)
    for data in signed_results:
        result = parse(data)
        for signature in result.findall(_SIGNATURE):
            result.remove(signature)
        tally[result.findtext(f"{{{R}}}Status")] += 1
        root.append(result)
    for status, element in counts.items():
        element.text = str(tally[status])
    return root


def read_answer(root: etree._Element) -> dict:
    """A BatchAck or BatchResult as a dict (tests, summaries)."""
    def text(name):
        return root.findtext(f"{{{R}}}{name}")
    out = {"kind": etree.QName(root).localname, "batch_id": text("BatchId"), "file_name": text("FileName"),
           "file_sha256": text("FileSha256"), "status": text("Status"), "code": text("Code"),
           "message": text("Message")}
    if out["kind"] == "BatchResult":
        out.update(accepted=int(text("Accepted")), accepted_with_warnings=int(text("AcceptedWithWarnings")),
                   refused=int(text("Refused")),
                   results=list(root.iterchildren(f"{{{R}}}DeclarationResult")))
    return out

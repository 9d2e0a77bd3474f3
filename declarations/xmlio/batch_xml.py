"""BatchAck and BatchResult documents (urn:declarations:result:v1, channels.md).

The BatchAck is small: built unsigned here, signed by the batch service.

The BatchResult holds one DeclarationResult per declaration of the file, each
with its anomalies (a 160,000-worker file can carry 160,000 warnings: tens of
megabytes). ``write_result`` streams it to a file and signs it there, in the
profile, with memory bounded by one item:

- it writes the document already in its exclusive canonical form (the form
  the Reference digests), so the SHA-256 of the profile's digest is computed
  over the very bytes as they are written, one item at a time;
- then it builds SignedInfo for that digest (``Signer.signature_element``)
  and appends the ds:Signature as the root's last child.

Why this holds: lxml canonicalizes every piece (the header fields in an
otherwise empty BatchResult, then each DeclarationResult on its own), and
the only difference between a piece canonicalized alone and in place is the
namespace declarations an output ancestor already rendered. Exclusive c14n
renders on an element the namespaces it visibly uses that its nearest
output ancestor did not already render with the same value. The root
renders ``xmlns="urn:declarations:result:v1"``; a DeclarationResult alone
renders the same declaration on its own start tag, and nothing else
differs (any other namespace it uses is rendered where it is used, alone or
in place: the root does not render it). So each item's canonical form in
place is its canonical form alone without that one declaration, which
``_in_place`` removes (and refuses anything else). Text and attribute
escaping (``&``, ``<``, ``>``, ``&#xD;``, ``&quot;``...) and attribute order are
lxml's c14n output, unchanged. Verified by signxml and by ``xmlsec1`` in
tests/integration/test_batch_result_stream.py, with thousands of anomalies
and characters that c14n escapes.

(The alternative, ``etree.xmlfile`` plus C14N 2.0 per item, would still need
the same in-place reasoning, and C14N 2.0 is not the profile's algorithm.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import BinaryIO, Iterable

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


_STATUSES = (("ACCEPTED", "Accepted"), ("ACCEPTED_WITH_WARNINGS", "AcceptedWithWarnings"), ("REFUSED", "Refused"))
_XML_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"  # as lxml writes it for the other answers
_ROOT_END = b"</BatchResult>"
_DEFAULT_NS = f' xmlns="{R}"'.encode()


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _in_place(item: bytes) -> bytes:
    """A DeclarationResult's canonical form alone -> its canonical form inside the BatchResult."""
    start = b"<DeclarationResult" + _DEFAULT_NS
    if not item.startswith(start) or item[len(start):len(start) + 1] not in (b">", b" "):
        raise ValueError("a stored DeclarationResult is not in the result namespace as the default namespace")
    return b"<DeclarationResult" + item[len(start):]


def write_result(out: BinaryIO, *, signer, batch_id: str, file_name: str, file_sha256: str,
                 counts: dict[str, int], signed_results: Iterable[bytes]) -> None:
    """Write the signed BatchResult to ``out``, streaming.

    ``counts``: ACCEPTED, ACCEPTED_WITH_WARNINGS, REFUSED -> number (they come
    before the items in the document, so they are counted first, by the
    caller, from the store). ``signed_results``: each stored, signed
    DeclarationResult in file order; their own Signatures are removed.
    """
    head = etree.Element(f"{{{R}}}BatchResult", nsmap={None: R})
    add_text(head, "BatchId", batch_id)
    add_text(head, "FileName", file_name)
    add_text(head, "FileSha256", file_sha256)
    for status, name in _STATUSES:
        add_text(head, name, counts.get(status, 0))
    opening = _c14n(head)
    assert opening.endswith(_ROOT_END)  # the root has children: never the empty-element form
    opening = opening[:-len(_ROOT_END)]
    digest = hashlib.sha256()
    out.write(_XML_DECLARATION)  # outside the root: not part of any canonical form
    digest.update(opening)
    out.write(opening)
    tally = dict.fromkeys(counts, 0)
    for data in signed_results:
        result = parse(data)
        for signature in result.findall(_SIGNATURE):
            result.remove(signature)
        status = result.findtext(f"{{{R}}}Status")
        tally[status] = tally.get(status, 0) + 1
        piece = _in_place(_c14n(result))
        digest.update(piece)
        out.write(piece)
    if {k: v for k, v in tally.items() if v} != {k: v for k, v in counts.items() if v}:
        raise ValueError(f"the items' statuses {tally} are not the counts written before them {counts}")
    digest.update(_ROOT_END)  # the canonical form ends with the root's end tag; the Signature goes before it
    out.write(etree.tostring(signer.signature_element(digest.digest())))
    out.write(_ROOT_END)
    out.write(b"\n")


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

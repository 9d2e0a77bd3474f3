"""The one door of the SOAP channel: from an HTTP request to (operation, payload element).

In this order, each failure a SOAP fault (faults.py):

1. Content-Type ``text/xml`` (SOAP 1.1): otherwise 415 + Client fault.
2. The body, kept as raw bytes, at most ``DECLARATIONS_MAX_MESSAGE_BYTES``
   (C010's limit, applied to the whole HTTP body): a larger Content-Length is
   refused before a byte is read (413 + Client fault); a chunked body is read
   up to the limit and no further. A body shorter than its Content-Length
   (the client gave up) is a Client fault.
3. The hardened parser (xmlio/parsing.py): not well-formed, DOCTYPE, entity:
   Client fault.
4. A SOAP 1.1 Envelope (a SOAP 1.2 one: VersionMismatch), an optional
   Header then a Body and nothing else.
5. mustUnderstand: this service understands no header block, so any block
   addressed to it (no actor, or actor ``next``) with mustUnderstand="1" is a
   MustUnderstand fault. Other header blocks are ignored.
6. The Body holds exactly one element: the wrapper of one of the five
   operations (document/literal wrapped) in urn:declarations:service:v1;
   anything else is a Client fault naming what was expected.
7. The wrapper is valid against the committed xsd/declaration-service.xsd
   (not a generated schema). The Submit* wrappers skip the declaration's own
   content: an XSD-invalid declaration is the pipeline's C005 (a REFUSED
   answer), not a fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from declarations import ns
from declarations.channels.soap import faults
from declarations.channels.soap.faults import SOAP_ENV
from declarations.exceptions import MalformedXml, TooLarge
from declarations.xmlio import parsing, schemas

SERVICE_NS = ns.SERVICE
LOOKUP_NS = ns.LOOKUP
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"

OPERATIONS = ("SubmitDimona", "SubmitDmfA", "SubmitSocialRisk", "GetDeclarationResult", "Prefill")
# The element each signed-request operation carries (its wrapper takes any element of the lookup namespace).
REQUEST_ELEMENT = {"GetDeclarationResult": "DeclarationResultRequest", "Prefill": "PrefillRequest"}


@dataclass(frozen=True)
class Contract:
    """What the edge checks of one service: its wrappers' namespace, operations, and the signed
    element (Clark notation) that an operation's wrapper must carry, if one is named."""
    namespace: str
    operations: tuple[str, ...]
    carried: dict[str, str]
    schema: str                 # the committed wrapper schema, named in faults


DECLARATION_SERVICE = Contract(SERVICE_NS, OPERATIONS, {op: ns.qn(LOOKUP_NS, el) for op, el in REQUEST_ELEMENT.items()},
                               "declaration-service.xsd")

_DRAIN_LIMIT = 64 * 1024 * 1024  # read and drop at most this much of a refused body, then close


@dataclass(frozen=True)
class Request:
    operation: str
    payload: etree._Element     # the wrapper's one child: the declaration or the signed request
    raw: bytes                  # the HTTP body as received


def _content_type_ok(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "text/xml"


def read_body(environ: dict, max_bytes: int) -> bytes:
    stream = environ["wsgi.input"]
    length_header = environ.get("CONTENT_LENGTH") or ""
    if length_header.strip():
        if not re.fullmatch(r"\s*\d{1,18}\s*", length_header):
            raise faults.client(f"Content-Length {length_header!r} is not a number", http_status=400)
        length = int(length_header)
        if max_bytes and length > max_bytes:
            _drain(stream, length)
            raise faults.client(f"C010: the message is {length} bytes, more than the limit of {max_bytes} bytes",
                                http_status=413)
        data = stream.read(length) if length else b""
        if len(data) < length:
            raise faults.client(f"the body ended after {len(data)} of its {length} bytes (Content-Length)",
                                http_status=400)
        return data
    # No Content-Length (chunked): read up to the limit, and one byte more to know.
    limit = max_bytes + 1 if max_bytes else -1
    data = stream.read(limit)
    if max_bytes and len(data) > max_bytes:
        raise faults.client(f"C010: the message is more than the limit of {max_bytes} bytes", http_status=413)
    return data


def _drain(stream, length: int) -> None:
    """Read (and drop) a refused body, so the client can read the answer; give up past _DRAIN_LIMIT."""
    left = min(length, _DRAIN_LIMIT)
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)


def read_request(environ: dict, max_bytes: int, contract: Contract = DECLARATION_SERVICE) -> Request:
    content_type = environ.get("CONTENT_TYPE") or ""
    if not _content_type_ok(content_type):
        raise faults.client(f"a SOAP 1.1 request has Content-Type text/xml, not {content_type or 'none'!r}",
                            http_status=415)
    raw = read_body(environ, max_bytes)
    try:
        envelope = parsing.parse(raw, max_bytes=max_bytes)
    except TooLarge as error:
        raise faults.client(f"C010: {error.message}", http_status=413) from None
    except MalformedXml as error:
        where = f" ({error.location})" if getattr(error, "location", None) else ""
        raise faults.client(f"the request is not a readable XML document: {error.message}{where}") from None
    return Request(*_operation(envelope, contract), raw=raw)


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _operation(envelope: etree._Element, contract: Contract) -> tuple[str, etree._Element]:
    if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
        if envelope.tag == f"{{{SOAP12_ENV}}}Envelope":
            raise faults.Fault("VersionMismatch", f"this service speaks SOAP 1.1 ({SOAP_ENV}), not SOAP 1.2")
        name = etree.QName(envelope)
        if name.localname == "Envelope":
            raise faults.Fault("VersionMismatch", f"the Envelope is in namespace {name.namespace or 'none'}; "
                               f"SOAP 1.1 is {SOAP_ENV}")
        raise faults.client(f"not a SOAP message: the root element is {name.localname}, not a SOAP 1.1 Envelope")
    children = _elements(envelope)
    header = None
    if children and children[0].tag == f"{{{SOAP_ENV}}}Header":
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != f"{{{SOAP_ENV}}}Body":
        raise faults.client("the Envelope must hold an optional Header, then a Body, and nothing else")
    if header is not None:
        _must_understand(header)
    body_children = _elements(children[0])
    if len(body_children) != 1:
        raise faults.client(f"the Body must hold exactly one element (the operation's wrapper), "
                            f"not {len(body_children)}")
    wrapper = body_children[0]
    name = etree.QName(wrapper)
    if name.namespace != contract.namespace or name.localname not in contract.operations:
        if name.localname in contract.operations:
            hint = f"{name.localname} is in namespace {name.namespace or 'none'}; expected {contract.namespace}"
        else:
            hint = (f"unknown operation {name.localname} ({name.namespace or 'no namespace'}); "
                    f"this service has {', '.join(contract.operations)} in {contract.namespace}")
        raise faults.client(hint)
    operation = name.localname
    problems = schemas.problems(wrapper)  # the committed wrapper schema (and the schemas it imports)
    if problems:
        first = problems[0]
        raise faults.client(f"the {operation} Body is not valid against {contract.schema}: "
                            f"{first.message} (at {first.location})")
    payload = _elements(wrapper)[0]
    expected = contract.carried.get(operation)
    if expected and payload.tag != expected:
        raise faults.client(f"{operation} carries a signed {etree.QName(expected).localname}, "
                            f"not {etree.QName(payload).localname}")
    return operation, payload


def _must_understand(header: etree._Element) -> None:
    for block in _elements(header):
        flag = (block.get(f"{{{SOAP_ENV}}}mustUnderstand") or "").strip()
        actor = (block.get(f"{{{SOAP_ENV}}}actor") or "").strip()
        if flag in ("1", "true") and actor in ("", ACTOR_NEXT):
            name = etree.QName(block)
            raise faults.Fault("MustUnderstand", f"header block {name.localname} ({name.namespace or 'no namespace'})"
                               " is marked mustUnderstand and this service understands no header block")


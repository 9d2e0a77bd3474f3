"""What the channel needs to know of one SOAP service: a ``ServiceDescriptor``.

The edge, the spyne dispatch, the faults, the metrics and the WSDL serving
are the same for every service of the channel; a service is this
descriptor plus a spyne ``ServiceBase`` (see declaration_service.py, the
model for issue 5's InstitutionService at ``/soap/institutions``).

A handler (a method of the ``ServiceBase``, declared
``@rpc(AnyXml, _returns=AnyXml, _body_style="bare")``) receives the
wrapper's one child element (the declaration, or the signed request) and
returns an ``Answer``: the signed document's bytes, inserted verbatim in the
response envelope (``envelope``), and a status for the metrics. It reaches
the services through ``ctx.udc.app``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from declarations.bootstrap import App
from declarations.channels.soap.faults import SOAP_ENV

REPO = Path(__file__).resolve().parents[3]
WSDL_DIR = REPO / "wsdl"


@dataclass(frozen=True)
class ServiceDescriptor:
    name: str                    # metrics label ``service``, e.g. "declarations"
    path: str                    # POST here; GET here?wsdl
    wsdl: Path                   # the committed WSDL, served as it is
    committed_address: str       # its soap:address location, replaced by the address the client called
    namespace: str               # the Body wrappers' namespace (and the spyne Application's tns)
    spyne_service: type          # the spyne ServiceBase: one method per operation, named as the wrapper
    # operation -> Clark name of the signed request its wrapper must carry (the XSD allows any element of
    # that request's namespace, the edge narrows it to the operation's own).
    signed_requests: Mapping[str, str] = field(default_factory=dict)

    @property
    def operations(self) -> tuple[str, ...]:
        return tuple(self.spyne_service.public_methods)


@dataclass(frozen=True)
class Answer:
    inner: bytes     # the signed document, as signed (or stored): embedded byte for byte
    status: str      # for the metrics: ACCEPTED | ACCEPTED_WITH_WARNINGS | REFUSED | OK


@dataclass
class Call:
    """spyne's ``ctx.udc`` (user-defined context) of one request: what a handler may use, and what went wrong."""
    app: App
    error: BaseException | None = None   # an exception of the handler, re-raised by dispatch (faults, log)


_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def envelope(namespace: str, response: str, inner: bytes) -> bytes:
    """The response envelope around ``inner``, byte for byte (its XML declaration dropped)."""
    inner = _XML_DECLARATION.sub(b"", inner, count=1)
    return (b"<?xml version='1.0' encoding='UTF-8'?>\n"
            b'<soapenv:Envelope xmlns:soapenv="' + SOAP_ENV.encode() + b'"><soapenv:Body>'
            b'<svc:' + response.encode() + b' xmlns:svc="' + namespace.encode() + b'">'
            + inner +
            b'</svc:' + response.encode() + b'></soapenv:Body></soapenv:Envelope>')

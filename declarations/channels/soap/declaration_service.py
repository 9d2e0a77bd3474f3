"""DeclarationService: the five operations as a spyne ``ServiceBase``, and its descriptor.

Each method is a ``dispatch.operation`` (``@rpc(AnyXml, _returns=AnyXml,
_body_style="bare")``): spyne
finds it by the Body wrapper's name (``{urn:declarations:service:v1}Name``)
and hands it the wrapper's one child element, untouched and still in the
envelope the edge parsed (the declaration, or the signed request). Each
method is one call into the services; it returns an ``Answer`` whose bytes
are the signed document as signed (or stored), embedded byte for byte in
the response (dispatch.py says why spyne does not re-serialize it).
"""

from __future__ import annotations

from lxml import etree

from declarations import ns
from declarations.bootstrap import App
from declarations.channels.soap.descriptor import WSDL_DIR, Answer, ServiceDescriptor
from declarations.channels.soap.dispatch import EngineService, operation
from declarations.services import lookup
from declarations.xmlio.results import add_text, xml_datetime

LOOKUP_NS = ns.LOOKUP


def _signed_bytes(app: App, element: etree._Element) -> bytes:
    return etree.tostring(app.signer.sign(element), encoding="UTF-8")


def _sub(parent: etree._Element, name: str, value, namespace: str = LOOKUP_NS) -> None:
    add_text(parent, name, value, namespace)


def refusal(app: App, refused: lookup.Refused) -> bytes:
    root = etree.Element(f"{{{LOOKUP_NS}}}Refusal", nsmap={None: LOOKUP_NS})
    _sub(root, "SenderId", refused.sender_id)
    _sub(root, "MessageId", refused.message_id)
    _sub(root, "Code", refused.code)
    _sub(root, "Message", refused.message)
    return _signed_bytes(app, root)


def prefill_result(app: App, answer: lookup.PrefillAnswer) -> bytes:
    root = etree.Element(f"{{{LOOKUP_NS}}}PrefillResult", nsmap={None: LOOKUP_NS, "res": ns.RESULT})
    _sub(root, "SenderId", answer.sender_id)
    _sub(root, "MessageId", answer.message_id)
    _sub(root, "Employer", answer.employer)
    _sub(root, "INSS", answer.inss)
    _sub(root, "EventDate", answer.event_date.isoformat())
    _sub(root, "ComputedAt", xml_datetime(answer.computed_at))
    if answer.reference is not None:
        reference = etree.SubElement(root, f"{{{ns.RESULT}}}ReferenceData")
        for attribute, element in answer.reference.FIELDS:
            _sub(reference, element, getattr(answer.reference, attribute), ns.RESULT)
    return _signed_bytes(app, root)


def submit(app: App, declaration: etree._Element) -> Answer:
    # The declaration as its own document: the element taken out of the envelope.
    data = etree.tostring(declaration, with_tail=False)
    receipt = app.ingest.submit(data, channel="REALTIME", element=declaration)
    return Answer(receipt.result_bytes, receipt.outcome.status)


def get_declaration_result(app: App, request: etree._Element) -> Answer:
    try:
        stored = lookup.declaration_result(app.engine, app.settings, request)
    except lookup.Refused as refused:
        return Answer(refusal(app, refused), "REFUSED")
    return Answer(stored, "OK")


def prefill(app: App, request: etree._Element) -> Answer:
    try:
        answer = lookup.prefill(app.engine, app.settings, request)
    except lookup.Refused as refused:
        return Answer(refusal(app, refused), "REFUSED")
    return Answer(prefill_result(app, answer), "OK")


class DeclarationService(EngineService):
    @operation
    def SubmitDimona(ctx, declaration):  # noqa: N802,N805 - spyne's style: the wrapper's name, ctx first
        return submit(ctx.udc.app, declaration)

    @operation
    def SubmitDmfA(ctx, declaration):  # noqa: N802,N805
        return submit(ctx.udc.app, declaration)

    @operation
    def SubmitSocialRisk(ctx, declaration):  # noqa: N802,N805
        return submit(ctx.udc.app, declaration)

    @operation
    def GetDeclarationResult(ctx, request):  # noqa: N802,N805
        return get_declaration_result(ctx.udc.app, request)

    @operation
    def Prefill(ctx, request):  # noqa: N802,N805
        return prefill(ctx.udc.app, request)


DESCRIPTOR = ServiceDescriptor(
    name="declarations",
    path="/soap/declarations",
    wsdl=WSDL_DIR / "declarations.wsdl",
    committed_address="http://127.0.0.1:8080/soap/declarations",
    namespace=ns.SERVICE,
    spyne_service=DeclarationService,
    signed_requests={"GetDeclarationResult": ns.qn(LOOKUP_NS, "DeclarationResultRequest"),
                     "Prefill": ns.qn(LOOKUP_NS, "PrefillRequest")},
)

"""InstitutionService (institutions.md) at /soap/institutions: a spyne ``ServiceBase`` and its descriptor.

The channel (edge, spyne dispatch, faults, metrics, WSDL serving) is the
DeclarationService's; this is one more descriptor (descriptor.py). Each
operation's wrapper (urn:declarations:institution-service:v1) carries one
signed request of urn:declarations:institution:v1, validated at the edge
against the committed xsd/institution-service.xsd (and institution.xsd)
and narrowed to the operation's own request element (``signed_requests``).

The seven methods are one handler: authenticate and decide
(services/institution_requests.py, then the desk), write the typed answer
(xmlio/institution_xml.py), sign it with the engine's key; dispatch puts the
signed bytes into the operation's response wrapper as they are. A refusal
(A001-A006) is such an answer, never a fault.
"""

from __future__ import annotations

from lxml import etree

from declarations import ns
from declarations.bootstrap import App
from declarations.channels.soap.descriptor import WSDL_DIR, Answer, ServiceDescriptor
from declarations.channels.soap.dispatch import EngineService, operation
from declarations.domain import institution_messages as m
from declarations.services import institution_requests
from declarations.xmlio import institution_xml


def signed_answer(app: App, answer: m.InstitutionAnswer) -> bytes:
    """The answer's document signed by the engine, serialized once."""
    return etree.tostring(app.signer.sign(institution_xml.answer_element(answer)), encoding="UTF-8")


def status_of(answer: m.InstitutionAnswer) -> str:
    """For the metrics: OK, or the refusal's code (A001-A006)."""
    return answer.code if isinstance(answer, m.Refused) else "OK"


def respond(app: App, request: etree._Element) -> Answer:
    """The signed answer to one signed request element (the wrapper's child)."""
    answer = institution_requests.answer(app.institutions, request, app.settings.now())
    return Answer(signed_answer(app, answer), status_of(answer))


class InstitutionService(EngineService):
    @operation
    def ListAuthorizations(ctx, request):  # noqa: N802,N805 - spyne's style: the wrapper's name, ctx first
        return respond(ctx.udc.app, request)

    @operation
    def RegisterPerson(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)

    @operation
    def UnregisterPerson(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)

    @operation
    def Consult(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)

    @operation
    def Subscribe(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)

    @operation
    def Unsubscribe(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)

    @operation
    def GetNotifications(ctx, request):  # noqa: N802,N805
        return respond(ctx.udc.app, request)


DESCRIPTOR = ServiceDescriptor(
    name="institutions",
    path="/soap/institutions",
    wsdl=WSDL_DIR / "institutions.wsdl",
    committed_address="http://127.0.0.1:8080/soap/institutions",
    namespace=ns.INSTITUTION_SERVICE,
    spyne_service=InstitutionService,
    signed_requests={name: ns.qn(ns.INSTITUTION, element)
                     for name, element in institution_xml.REQUEST_OF_OPERATION.items()},
)

"""spyne behind the edge: the envelope the edge parsed goes to spyne, which finds and calls the operation.

One ``spyne.Application`` per service (its descriptor's ``ServiceBase``,
``tns`` = the wrappers' namespace, ``Soap11(validator=None)`` in and out:
the edge has validated the Body against the committed XSD already, and
spyne's generated schema is not the contract). spyne is driven through its
server API (``ServerBase``, as ``spyne.server.null`` does) rather than its
WSGI server, so the envelope is parsed once, by the edge's hardened parser:

1. ``Soap11.decompose_incoming_envelope`` on the edge's tree (``ctx.in_document``
   is set directly; ``create_in_document``, spyne's own parse, is skipped);
2. ``generate_method_contexts``: the method named by the Body wrapper;
3. ``get_in_object``: the ``AnyXml`` argument, the wrapper's one child element;
4. ``get_out_object``: spyne calls the method (``EngineService.call_wrapper``
   keeps any exception it raises, which is re-raised here with its traceback:
   the WSGI layer turns it into our fault, never spyne's);
5. the answer: the method's ``Answer`` bytes in the response wrapper spyne's
   descriptor names (``SubmitDimonaResponse``, ...).

Why the answer is not serialized by spyne (``Soap11.serialize``): the
embedded document is signed. spyne would parse the signed bytes and write
them out again inside its own tree; exclusive c14n still verifies (tried),
but the bytes change (its namespace clean-up drops an unused declaration),
so the client would get bytes other than those the engine
signed and stored (the receipt of a retry, GetDeclarationResult's stored
result), at the cost of a parse and a serialization per answer, and subject
to how lxml reconciles namespaces when it moves an element into another tree
(docs/soap.md: the zeep prefix rewrite). Inserting the bytes verbatim keeps
"the answer is the stored document" literally true.

``MethodContext.close`` is not called: it only closes uploaded files (none
here) and runs ``gc.collect()`` at most once a second, which would be a
pause in the middle of the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lxml import etree
from spyne import AnyXml, Application, MethodContext, ServiceBase, rpc
from spyne.protocol.soap import Soap11
from spyne.server import ServerBase

from declarations.bootstrap import App
from declarations.channels.soap import faults
from declarations.channels.soap.descriptor import Answer, Call, ServiceDescriptor, envelope

log = logging.getLogger("declarations.soap")


@dataclass(frozen=True)
class Reply:
    body: bytes      # the whole response envelope
    status: str      # the Answer's, for the metrics


def operation(method):
    """``@rpc(AnyXml, _returns=AnyXml, _body_style="bare")``, the one shape of every operation of the
    channel's services: spyne finds the method by the Body wrapper's name and hands it the wrapper's one
    child element, untouched; the method returns an ``Answer``."""
    return rpc(AnyXml, _returns=AnyXml, _body_style="bare")(method)


class EngineService(ServiceBase):
    """The base of the channel's spyne services: an exception of a method is kept for dispatch, not turned
    into spyne's own Fault (whose faultstring would carry the exception's text) nor logged by spyne."""

    @classmethod
    def call_wrapper(cls, ctx, args=None):
        try:
            return super().call_wrapper(ctx, args)
        except Exception as error:  # noqa: BLE001 - re-raised by dispatch()
            ctx.udc.error = error
            return None


class _EdgeServer(ServerBase):
    """spyne's transport for requests that the edge has already read and parsed."""
    transport = "urn:declarations:soap-edge"


class SpyneService:
    """A descriptor's spyne Application and the server object that drives it (built once per process)."""

    def __init__(self, descriptor: ServiceDescriptor):
        self.descriptor = descriptor
        self.application = Application([descriptor.spyne_service], tns=descriptor.namespace,
                                       name=descriptor.spyne_service.__name__,
                                       in_protocol=Soap11(validator=None), out_protocol=Soap11(validator=None))
        self.server = _EdgeServer(self.application)
        self.protocol = self.application.in_protocol

    def dispatch(self, app: App, envelope_root: etree._Element) -> Reply:
        ctx = MethodContext(self.server, MethodContext.SERVER)
        ctx.udc = Call(app)
        ctx.in_document = (envelope_root, {})   # the edge's tree: no second parse, no href resolution
        self.protocol.decompose_incoming_envelope(ctx, Soap11.REQUEST)
        contexts = self.protocol.generate_method_contexts(ctx)
        if len(contexts) != 1:  # no auxiliary methods here
            raise RuntimeError(f"spyne found {len(contexts)} methods for {ctx.method_request_string}")
        ctx = contexts[0]
        self.server.get_in_object(ctx)
        self._raise_error(ctx, "reading the request")
        self.server.get_out_object(ctx)
        self._raise_error(ctx, "the operation")
        answer = ctx.out_object[0] if ctx.out_object else None
        if not isinstance(answer, Answer):
            raise TypeError(f"{ctx.method_request_string} returned {type(answer).__name__}, not an Answer")
        response = etree.QName(ctx.descriptor.out_message.Attributes.sub_name
                               or ctx.descriptor.out_message.get_type_name()).localname
        return Reply(envelope(self.descriptor.namespace, response, answer.inner), answer.status)

    @staticmethod
    def _raise_error(ctx, step: str) -> None:
        error = ctx.udc.error
        if error is not None:
            raise error  # the handler's own exception, traceback and all (a faults.Fault stays one)
        if ctx.in_error is not None or ctx.out_error is not None:
            # spyne's own Fault: the edge let through something spyne would not take. Our bug, not the
            # caller's: logged, and a Server fault without detail.
            spyne_fault = ctx.in_error or ctx.out_error
            log.error("spyne refused a request the edge accepted, in %s: %s %s", step,
                      getattr(spyne_fault, "faultcode", ""), getattr(spyne_fault, "faultstring", spyne_fault))
            raise faults.server()

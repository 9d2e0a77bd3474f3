"""The WSGI application of the real-time channel.

Routes, for each service of ``SERVICES`` (descriptor.py):

- ``POST <path>`` (``/soap/declarations``: DeclarationService;
  ``/soap/institutions``: InstitutionService): the edge (edge.py) then spyne
  (dispatch.py).
- ``GET <path>?wsdl``: the service's committed WSDL (wsdl/declarations.wsdl,
  wsdl/institutions.wsdl), with only its soap:address location set to the
  address the client called.

and for all:

- ``GET /xsd/NAME.xsd``: the committed schemas the WSDLs import.
- ``GET /metrics``: Prometheus; ``GET /healthz``: "ok" once the worker is up.
- Anything else: 404 (405 for another method on a known path).

Every exception is caught here, spyne's included: a ``Fault`` is answered
as such, anything else is logged with its traceback and answered with a
``Server`` fault that says nothing of it. The process keeps no state another process needs (the
store holds everything), so any number of workers can answer.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Callable, Iterable

from declarations.bootstrap import App, build
from declarations.channels.soap import edge, faults, metrics
from declarations.channels.soap.declaration_service import DESCRIPTOR as DECLARATIONS
from declarations.channels.soap.descriptor import REPO, ServiceDescriptor
from declarations.channels.soap.dispatch import SpyneService
from declarations.channels.soap.institutions import DESCRIPTOR as INSTITUTIONS

log = logging.getLogger("declarations.soap")

# The services of the channel: each one a descriptor (descriptor.py).
SERVICES: tuple[ServiceDescriptor, ...] = (DECLARATIONS, INSTITUTIONS)
XSD_DIR = REPO / "xsd"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

XML = "text/xml; charset=utf-8"


def wsdl_for(host: str, scheme: str = "http", service: ServiceDescriptor = DECLARATIONS) -> bytes:
    """The committed WSDL with the service address of ``host`` (as the client called it)."""
    committed = service.wsdl.read_bytes()
    location = f'location="{scheme}://{host}{service.path}"'.encode()
    return committed.replace(f'location="{service.committed_address}"'.encode(), location, 1)


class SoapApplication:
    def __init__(self, app_factory: Callable[[], App] = build,
                 services: tuple[ServiceDescriptor, ...] = SERVICES):
        self._app_factory = app_factory
        self._app: App | None = None
        self._wsdl: dict[tuple[str, str], bytes] = {}
        # spyne Applications built once per process, at start (their interface is built eagerly)
        self._services = {service.path: SpyneService(service) for service in services}

    @property
    def app(self) -> App:
        if self._app is None:  # built in the worker, after the fork: its own database pool
            self._app = self._app_factory()
        return self._app

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            service = self._services.get(path)
            if service is not None:
                if method == "POST":
                    return self._soap(service, environ, start_response)
                if method in ("GET", "HEAD") and (environ.get("QUERY_STRING") or "").lower() == "wsdl":
                    return self._respond(start_response, "200 OK", XML,
                                         self._wsdl_bytes(service.descriptor, environ), method)
                return self._respond(start_response, "405 Method Not Allowed", "text/plain; charset=utf-8",
                                     b"POST a SOAP 1.1 request, or GET ?wsdl\n", method, [("Allow", "GET, POST")])
            if method in ("GET", "HEAD"):
                if path == "/metrics":
                    data, content_type = metrics.exposition()
                    return self._respond(start_response, "200 OK", content_type, data, method)
                if path == "/healthz":
                    return self._respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ok\n", method)
                if path.startswith("/xsd/"):
                    name = path[len("/xsd/"):]
                    if re.fullmatch(r"[a-z0-9-]+\.xsd", name) and (XSD_DIR / name).is_file():
                        return self._respond(start_response, "200 OK", XML, (XSD_DIR / name).read_bytes(), method)
            where = ", ".join(self._services)
            return self._respond(start_response, "404 Not Found", "text/plain; charset=utf-8",
                                 f"nothing at {path}; the services are at {where}\n".encode(), method)
        except Exception:  # noqa: BLE001 - the last line: never a traceback to the caller
            log.exception("internal error outside the SOAP handler")
            return self._fault(start_response, faults.server())

    # -- SOAP ------------------------------------------------------------------

    def _soap(self, service: SpyneService, environ: dict, start_response) -> Iterable[bytes]:
        started = time.perf_counter()
        name = service.descriptor.name
        operation = "unknown"
        try:
            request = edge.read_request(environ, self.app.settings.max_message_bytes, service.descriptor)
            operation = request.operation
            answer = service.dispatch(self.app, request.envelope)
        except faults.Fault as fault:
            metrics.observe(name, operation, fault.code, time.perf_counter() - started)
            return self._fault(start_response, fault)
        except Exception:  # noqa: BLE001 - spyne's and the services' alike: no detail to the caller
            log.exception("internal error in %s %s", name, operation)
            metrics.observe(name, operation, "Server", time.perf_counter() - started)
            return self._fault(start_response, faults.server())
        metrics.observe(name, operation, answer.status, time.perf_counter() - started)
        return self._respond(start_response, "200 OK", XML, answer.body, "POST")

    def _fault(self, start_response, fault: faults.Fault) -> Iterable[bytes]:
        status = {400: "400 Bad Request", 413: "413 Content Too Large", 415: "415 Unsupported Media Type"}.get(
            fault.http_status, "500 Internal Server Error")
        return self._respond(start_response, status, XML, faults.envelope(fault), "POST")

    def _wsdl_bytes(self, service: ServiceDescriptor, environ: dict) -> bytes:
        host = environ.get("HTTP_HOST") or ""
        if not _HOST.match(host):
            host = f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '8080')}"
        scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
        key = (service.path, f"{scheme}://{host}")
        if key not in self._wsdl:
            if len(self._wsdl) > 64:
                self._wsdl.clear()
            self._wsdl[key] = wsdl_for(host, scheme, service)
        return self._wsdl[key]

    @staticmethod
    def _respond(start_response, status: str, content_type: str, body: bytes, method: str,
                 extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))] + (extra or [])
        start_response(status, headers)
        return [b""] if method == "HEAD" else [body]


def application_factory() -> SoapApplication:
    """gunicorn's ``declarations.channels.soap.wsgi:application_factory()``: settings from the environment."""
    return SoapApplication()

"""The real-time channel: DeclarationService over SOAP 1.1 (spec/channels.md, docs/soap.md).

- ``descriptor``: what the channel knows of a service (path, committed WSDL,
  wrappers' namespace, spyne ServiceBase, signed requests).
- ``edge``: one door for every request: raw bytes, size limit, hardened
  parse, envelope, mustUnderstand, Body against the committed XSD.
- ``dispatch``: spyne behind the edge: finds and calls the operation on the
  edge's parsed envelope; the signed answer inserted verbatim.
- ``declaration_service``: DeclarationService, the five operations (a spyne
  ServiceBase), each a call into the services; its descriptor.
- ``faults``: SOAP 1.1 faults.
- ``wsgi``: routes (/soap/declarations, ?wsdl, /xsd/*, /metrics, /healthz).
- ``metrics``: Prometheus counters and histograms (multi-process).
- ``server``: gunicorn, background tasks; ``commands``: ``declarations serve``.
"""

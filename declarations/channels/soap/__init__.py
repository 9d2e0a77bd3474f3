"""The real-time channel: DeclarationService over SOAP 1.1 (spec/channels.md, docs/soap.md).

- ``edge``: one door for every request: raw bytes, size limit, hardened
  parse, envelope, mustUnderstand, Body against the committed XSD.
- ``dispatch``: the five operations, each a call into the services.
- ``faults``: SOAP 1.1 faults.
- ``wsgi``: routes (/soap/declarations, ?wsdl, /xsd/*, /metrics, /healthz).
- ``metrics``: Prometheus counters and histograms (multi-process).
- ``server``: gunicorn, background tasks; ``commands``: ``declarations serve``.
"""

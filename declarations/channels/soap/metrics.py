"""Prometheus metrics of the SOAP channel.

Under gunicorn every worker is a process of its own: ``declarations serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder) before any
worker starts, so each worker writes its samples there and ``/metrics``, in
whichever worker answers, adds them all up (prometheus_client's multi-process
mode). Without that variable (a single process, tests in-process) the
default registry is used.

- ``declarations_soap_requests_total{service, operation, status}``: service
  is the descriptor's name (``declarations``); status is the
  declaration's Status (ACCEPTED, ACCEPTED_WITH_WARNINGS, REFUSED), OK or
  REFUSED for GetDeclarationResult / Prefill, or the fault code (Client,
  MustUnderstand, VersionMismatch, Server). ``operation`` is ``unknown``
  when the request named none of the service's operations.
- ``declarations_soap_request_duration_seconds{service, operation}``: from
  the first byte read to the answer built.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

REQUESTS = Counter("declarations_soap_requests", "SOAP requests by service, operation and outcome",
                   ["service", "operation", "status"])
LATENCY = Histogram("declarations_soap_request_duration_seconds", "SOAP request latency by service and operation",
                    ["service", "operation"], buckets=BUCKETS)


def observe(service: str, operation: str, status: str, seconds: float) -> None:
    REQUESTS.labels(service, operation, status).inc()
    LATENCY.labels(service, operation).observe(seconds)


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)

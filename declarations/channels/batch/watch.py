"""The batch inbox watcher that ``declarations serve`` runs in a process of its own.

Polls the inbox every DECLARATIONS_INBOX_POLL_SECONDS (default 2 s) and takes
what is complete there (``process_inbox_once``); the batch service logs one
structured line per batch taken and finished. Several engines may watch the
same inbox over one database: each file is claimed by exactly one.
"""

from __future__ import annotations

import logging
import threading

from declarations.bootstrap import App
from declarations.services.batch import process_inbox_once
from declarations.services.batch_items import BatchWorkers
from declarations.settings import Settings

log = logging.getLogger("declarations.batch.watch")


def watch_inbox(settings: Settings, stop: threading.Event) -> None:
    app = App(settings)
    interval = settings.inbox_poll_seconds
    # The batch worker processes start with the watcher and are kept from one file to the next (a new pool
    # after a file that did not end cleanly): a file finds them forked, connected and warm.
    workers = BatchWorkers(app, keep=True)
    log.info("watching %s every %s s", settings.inbox, interval)
    try:
        try:
            workers.start(settings.batch_workers)
        except Exception:  # the first file that needs them tries again (and reports why it cannot)
            log.exception("the batch worker processes could not be started")
        while not stop.is_set():
            try:
                process_inbox_once(app, workers=workers)
            except Exception:  # one bad pass must not stop the watcher; the next pass retries
                log.exception("inbox pass failed; retrying in %s s", interval)
            stop.wait(interval)
    finally:
        workers.close()
        app.close()

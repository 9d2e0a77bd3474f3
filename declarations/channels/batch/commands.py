"""``declarations batch put FILE`` and ``declarations batch run`` (operations.md).

``run`` takes what is in the inbox now, then stops: exit 0 when every file
was taken, 1 when any file was refused (FILE_REFUSED, or a NAME that is not
a batch name) or interrupted (a worker process died: the next run resumes
it). A rich progress bar on standard error (items done, items/s, anomalies
so far) when it is a terminal; one summary line per file always, and one
JSON log line per batch taken and finished.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from declarations.channels.cli import say


def _ensure_log_handler() -> None:
    log = logging.getLogger("declarations.batch")
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class RichProgress:
    """One bar per batch: items done of ItemCount, items/s, refused and warned so far."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn)

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} items/s"), TextColumn("refused {task.fields[refused]}"),
            TextColumn("warnings {task.fields[warned]}"), TimeElapsedColumn(),
            console=Console(file=sys.stderr), transient=False)
        self._task = None
        self._counts = {"REFUSED": 0, "ACCEPTED_WITH_WARNINGS": 0}
        self._done = 0
        self._begin = 0.0

    def started(self, summary, total, done):
        import time

        self._progress.start()
        self._counts = {"REFUSED": 0, "ACCEPTED_WITH_WARNINGS": 0}
        self._done, self._begin = 0, time.monotonic()
        self._task = self._progress.add_task(summary.file_name, total=total, completed=done, rate="-",
                                             refused=0, warned=0)

    def advanced(self, status):
        import time

        self._done += 1
        if status in self._counts:
            self._counts[status] += 1
        elapsed = max(time.monotonic() - self._begin, 1e-9)
        self._progress.update(self._task, advance=1, rate=f"{self._done / elapsed:,.1f}",
                              refused=self._counts["REFUSED"], warned=self._counts["ACCEPTED_WITH_WARNINGS"])

    def finished(self, summary):
        self._progress.stop()

    def stop(self):
        self._progress.stop()


def summary_line(s) -> str:
    if s.outcome == "DONE":
        c = s.counts
        return (f"{s.file_name}: batch {s.batch_id} of sender {s.sender_id} done, {s.items} declarations "
                f"({c.get('accepted', 0)} accepted, {c.get('accepted_with_warnings', 0)} with warnings, "
                f"{c.get('refused', 0)} refused) in {s.seconds:.1f} s")
    if s.outcome == "FILE_REFUSED":
        return f"{s.file_name}: FILE_REFUSED {s.code}: {s.message}"
    if s.outcome == "RETRY":
        return f"{s.file_name}: batch {s.batch_id} of sender {s.sender_id} again (same SHA-256): first answers re-issued"
    if s.outcome == "BAD_NAME":
        return f"{s.file_name}: not taken: {s.message} (renamed to .go.refused)"
    if s.outcome == "BUSY":
        return f"{s.file_name}: being processed by another process"
    if s.outcome == "INTERRUPTED":
        return f"{s.file_name}: interrupted ({s.message}); the next run finishes it"
    return f"{s.file_name}: gone before it could be taken (another process took it)"


def cmd_batch(app, args) -> int:
    from declarations.services import batch
    from declarations.services.batch_items import BatchWorkers

    if args.action == "put":  # a usage error exits with 2 (operations.md)
        source = Path(args.file)
        if not source.is_file():
            say(f"declarations: cannot read {args.file}")
            return 2
        try:
            placed = batch.put(app.settings, source)
        except ValueError as error:
            say(f"declarations: {error}")
            return 2
        say(f"put {placed.name} and its .go in {app.settings.inbox}")
        return 0
    _ensure_log_handler()
    progress = RichProgress() if sys.stderr.isatty() else None
    workers = BatchWorkers(app, keep=False)
    if app.settings.batch_workers > 1 and any(app.settings.inbox.glob("*.go")):
        workers.prepare()  # start-up, as the imports: not on the way of the first file that needs workers
    try:
        summaries = batch.process_inbox_once(app, progress, workers)
    finally:
        if progress is not None:
            progress.stop()
        workers.close()
    for s in summaries:
        say(summary_line(s))
    if not summaries:
        say(f"nothing to take in {app.settings.inbox}")
    return 1 if any(s.refused or s.outcome == "INTERRUPTED" for s in summaries) else 0


def register(subparsers) -> None:
    b = subparsers.add_parser("batch", help="the batch inbox: put a file, or process the inbox now")
    bsub = b.add_subparsers(dest="action", metavar="ACTION", required=True)
    put = bsub.add_parser("put", help="put FILE (NAME.xml or NAME.xml.gz) in the inbox, then NAME.go")
    put.add_argument("file", metavar="FILE")
    bsub.add_parser("run", help="process what is in the inbox now, then stop")
    b.set_defaults(run=cmd_batch)

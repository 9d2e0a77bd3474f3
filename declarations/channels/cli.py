"""The ``declarations`` command (operations.md).

Thin: parses arguments, calls a service, prints. What a person needs goes to
standard error; XML documents of the contract go to standard output.
Exit codes: 0 done / all accepted, 1 refused, 2 usage error or unusable setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from lxml import etree

from declarations.bootstrap import App, build
from declarations.exceptions import DeclarationsError, DirectoryRefused, InputRefused, SettingsError
from declarations.settings import Settings


def say(message: str) -> None:
    print(message, file=sys.stderr)


def _emit(data: bytes) -> None:
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    sys.stdout.flush()


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


class UsageError(DeclarationsError):
    pass


# --- commands --------------------------------------------------------------

def cmd_init(app: App, args) -> int:
    app.init()
    say(f"store ready at {_safe_url(app.settings.database_url)}; engine certificate in {app.settings.engine_cert}")
    return 0


def cmd_engine_cert(app: App, args) -> int:
    if not app.settings.engine_cert.exists():
        raise UsageError(f"no engine certificate in {app.settings.home}: run 'declarations init' first")
    _emit(app.settings.engine_cert.read_bytes())
    return 0


def cmd_directory(app: App, args) -> int:
    from declarations.services import directory

    if args.action == "load":
        try:
            loaded = directory.load(app.engine, _read(args.file))
        except DirectoryRefused as error:
            say(f"directory refused: {error.message}")
            return 1
        say(f"directory loaded: {len(loaded.employers)} employers, {len(loaded.senders)} senders, "
             f"{len(loaded.mandates)} mandates, {len(loaded.institutions)} institutions, "
             f"{len(loaded.authorizations)} authorizations")
        return 0
    _emit(directory.export(app.engine))
    return 0


def cmd_submit(app: App, args) -> int:
    from declarations.xmlio.results import results_wrapper, to_bytes

    receipts = [app.ingest.submit(_read(path), channel="CLI") for path in args.files]
    for path, receipt in zip(args.files, receipts):
        say(_summary(path, receipt.outcome, retry=receipt.retry))
    if len(receipts) == 1:
        _emit(receipts[0].result_bytes)
    else:
        _emit(to_bytes(results_wrapper(r.signed_result for r in receipts)))
    return 0 if all(r.outcome.accepted for r in receipts) else 1


def cmd_validate(app: App, args) -> int:
    from declarations.services.validate import validate
    from declarations.xmlio.results import result_element, results_wrapper, to_bytes

    settings = app.settings
    signer = app.signer if settings.engine_key.exists() else None  # runs with no init: unsigned then
    documents = []
    blocking = False
    for path in args.files:
        outcome = validate(_read(path), now=settings.now(), max_bytes=settings.max_message_bytes)
        blocking |= not outcome.accepted
        say(_summary(path, outcome))
        element = result_element(outcome)
        documents.append(signer.sign(element) if signer else element)
    _emit(to_bytes(documents[0] if len(documents) == 1 else results_wrapper(documents)))
    return 1 if blocking else 0


def cmd_sign(app: App, args) -> int:
    from declarations.xmlio import parsing
    from declarations.xmlio.signature import Signer

    signer = Signer.from_files(Path(args.key), Path(args.cert))
    document = parsing.parse(_read(args.file))
    _emit(etree.tostring(signer.sign(document), xml_declaration=True, encoding="UTF-8"))
    return 0


def cmd_archive(app: App, args) -> int:
    from declarations.services.archive import archived

    found = archived(app.engine, args.declaration_id)
    if found is None:
        say(f"no declaration {args.declaration_id} in the archive")
        return 1
    say(f"declaration {found.declaration_id}: {found.kind or 'unreadable kind'} {found.status}, received "
         f"{found.received_at} by {found.channel} from sender {found.sender_id or '?'} "
         f"(MessageId {found.message_id or '?'})")
    sys.stdout.buffer.write(found.result if args.result else found.original)  # byte for byte
    sys.stdout.flush()
    return 0


def cmd_demo(app: App, args) -> int:
    from declarations import demo
    return demo.run(app, out=sys.stderr)


def _summary(path: str, outcome, *, retry: bool = False) -> str:
    lines = [f"{path}: {outcome.status} (DeclarationId {outcome.declaration_id}"
             + (f", PeriodId {outcome.period_id}" if outcome.period_id else "")
             + (", a retry: first result returned" if retry else "") + ")"]
    for a in outcome.anomalies:
        lines.append(f"  {a.code} {a.severity.value}{' at ' + a.location if a.location else ''}: {a.message}")
    return "\n".join(lines)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


# --- parser ----------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="declarations", description="The declaration engine for social security.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("init", help="create or upgrade the store; create the engine key").set_defaults(run=cmd_init)
    sub.add_parser("engine-cert", help="print the engine's certificate (PEM)").set_defaults(run=cmd_engine_cert)
    d = sub.add_parser("directory", help="load or export the reference directory")
    dsub = d.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = dsub.add_parser("load", help="make the directory equal to FILE")
    load.add_argument("file", metavar="FILE")
    dsub.add_parser("export", help="print the directory")
    d.set_defaults(run=cmd_directory)
    s = sub.add_parser("submit", help="process files as real-time submissions, print the signed results")
    s.add_argument("files", metavar="FILE", nargs="+")
    s.set_defaults(run=cmd_submit)
    v = sub.add_parser("validate", help="the offline pre-submission check (stores nothing)")
    v.add_argument("files", metavar="FILE", nargs="+")
    v.set_defaults(run=cmd_validate)
    g = sub.add_parser("sign", help="sign a declaration or request in the signature profile")
    g.add_argument("file", metavar="FILE")
    g.add_argument("--key", required=True, metavar="KEY")
    g.add_argument("--cert", required=True, metavar="CERT")
    g.set_defaults(run=cmd_sign)
    a = sub.add_parser("archive", help="print a received message exactly as it came in (or its receipt)")
    a.add_argument("declaration_id", metavar="DECLARATION_ID", type=int)
    a.add_argument("--result", action="store_true", help="print the signed DeclarationResult instead")
    a.set_defaults(run=cmd_archive)
    sub.add_parser("demo", help="init, load the demo directory, submit demo declarations, print the receipts"
                   ).set_defaults(run=cmd_demo)
    for register in _channel_commands():
        register(sub)
    return top


# Each channel package adds its own sub-commands (``serve``; ``batch put|run``)
# through a ``register(subparsers)`` function, so this module stays thin.
CHANNEL_COMMAND_MODULES = ("declarations.channels.soap.commands", "declarations.channels.batch.commands",
                           "declarations.channels.log.commands")


def _channel_commands():
    import importlib

    for name in CHANNEL_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name):
                continue  # that channel is not built yet
            raise
        yield module.register


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        app = build(Settings.from_env())
    except SettingsError as error:
        say(f"declarations: {error.message}")
        return 2
    try:
        return args.run(app, args)
    except (UsageError, SettingsError, FileNotFoundError) as error:
        say(f"declarations: {getattr(error, 'message', error)}")
        return 2
    except InputRefused as error:
        say(f"declarations: {error}")
        return 1
    except Exception as error:  # a bug or a broken store: say so plainly; each declaration is all-or-nothing
        if os.environ.get("DECLARATIONS_DEBUG"):
            raise
        say(f"declarations: internal error ({type(error).__name__}: {error}). What was being processed was "
             "not stored; set DECLARATIONS_DEBUG=1 to see the traceback.")
        return 70  # EX_SOFTWARE
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())

"""``declarations log verify`` and ``declarations log person INSS`` (institutions.md, the access log).

``verify`` walks the whole hash chain: exit 0 when it is intact, 1 naming the
first entry that breaks it. ``person`` prints, for one INSS, every access to
that person's data (who, what, when, under which authorization) as a table on
standard output; exit 0.
"""

from __future__ import annotations

import sys

from declarations.channels.cli import say

COLUMNS = ("entry", "when", "institution", "operation", "data type", "window", "outcome", "authorization",
           "MessageId", "detail")


def cmd_log(app, args) -> int:
    from declarations.services import institutions

    if args.action == "verify":
        check = institutions.verify_log(app.engine)
        if check.first_broken is None:
            say(f"access log intact: {check.entries} entries")
            return 0
        say(f"access log BROKEN at entry {check.first_broken}: {check.reason} "
            f"({check.entries} entries before it are intact)")
        return 1
    accesses = institutions.person_accesses(app.engine, args.inss)
    rows = [(str(a.sequence), a.at, a.institution_id, a.operation, a.data_type or "-", a.window or "-", a.outcome,
             a.authorization or "-", a.message_id or "-", a.detail or "") for a in accesses]
    print(table(COLUMNS, rows))
    sys.stdout.flush()
    say(f"{len(rows)} access{'es' if len(rows) != 1 else ''} to the data of person {args.inss}")
    return 0


def table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


def register(subparsers) -> None:
    log = subparsers.add_parser("log", help="the institutions' access log: check the chain, or a person's accesses")
    lsub = log.add_subparsers(dest="action", metavar="ACTION", required=True)
    lsub.add_parser("verify", help="check the whole hash chain; name the first broken entry")
    person = lsub.add_parser("person", help="every access to the data of the person INSS")
    person.add_argument("inss", metavar="INSS")
    log.set_defaults(run=cmd_log)

"""``declarations serve [--bind HOST:PORT] [--workers N]`` (operations.md)."""

from __future__ import annotations

import re


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the SOAP services (and the batch inbox watcher) until stopped")
    p.add_argument("--bind", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="the address to listen on (default 127.0.0.1:8080)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default 2 x CPUs + 1)")
    p.set_defaults(run=cmd_serve)


def cmd_serve(app, args) -> int:
    from declarations.channels.cli import UsageError
    from declarations.channels.soap import server

    if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}|unix:.+", args.bind):
        raise UsageError(f"--bind takes HOST:PORT, not {args.bind!r}")
    workers = args.workers if args.workers is not None else server.default_workers()
    if workers < 1:
        raise UsageError("--workers takes a number of at least 1")
    # `init` semantics: create or upgrade the store and the engine key (idempotent), in the
    # arbiter, before any worker starts; then let go of the arbiter's connections.
    app.init()
    app.close()
    server.register_background_task("batch-inbox", "declarations.channels.batch.watch:watch_inbox")
    return server.serve(app.settings, bind=args.bind, workers=workers)

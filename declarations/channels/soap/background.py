"""One background task of ``declarations serve`` in a process of its own (server.BACKGROUND_TASKS).

    python -m declarations.channels.soap.background NAME module:function

Calls ``function(settings, stop_event)``; SIGTERM and SIGINT set ``stop_event``
(a ``threading.Event``), and the function is expected to return soon after.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading

from declarations.settings import Settings


def main(argv: list[str]) -> int:
    name, target = argv
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format=f"[%(asctime)s] [%(process)d] [{name}] %(message)s")
    function(Settings.from_env(), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

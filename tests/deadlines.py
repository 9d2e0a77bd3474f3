"""A call under a deadline, for tests of code that could hang (a lock a dead process held, a wait for a turn
that never comes): a hang fails the test instead of stopping the whole run."""

from __future__ import annotations

import threading


def within(seconds: float, call, hang: str = "the call hangs"):
    """``call()``'s result if it returns within ``seconds`` (it runs in a daemon thread); what it raised,
    raised again; else fails with ``hang``."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # noqa: BLE001 -- raised again in the test's thread
            outcome.append((False, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), hang
    returned, value = outcome[0]
    if not returned:
        raise value
    return value

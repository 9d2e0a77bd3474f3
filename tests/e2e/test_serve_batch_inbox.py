"""``declarations serve`` also watches the batch inbox: a batch put by a sender
is taken by the running server and its signed result appears in the outbox."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from declarations.channels.soap.harness import Server
from declarations.xmlio import parsing, signature

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import batch as gen  # noqa: E402

R = "{urn:declarations:result:v1}"


@pytest.mark.parametrize("workers", ["1", "2"], ids=["in-process", "two-workers"])
def test_a_running_server_takes_a_batch_from_the_inbox(tmp_path, workers):
    home = tmp_path / "home"
    home.mkdir()
    env = {"DECLARATIONS_INBOX_POLL_SECONDS": "0.2", "DECLARATIONS_BATCH_WORKERS": workers,
           "DECLARATIONS_BATCH_PARALLEL_MIN_BYTES": "0"}
    with Server(home, now="2025-11-15T10:00:00+01:00", extra_env=env):
        items = gen.dimona_items(gen.signer_2001(), 3, prefix="serve", bad=[1])
        gen.put(home / "inbox", "secretariat-1", gen.batch_bytes(batch_id="serve-1", items=items))
        result_path = home / "outbox" / "secretariat-1.result.xml"
        deadline = time.monotonic() + 60
        while not result_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert result_path.exists(), "the server did not write the batch result within 60 s"
        assert (home / "outbox" / "secretariat-1.ack.xml").exists()
        result = parsing.parse(result_path.read_bytes())
        signature.verify(result)
        statuses = [r.findtext(f"{R}Status") for r in result.iter(f"{R}DeclarationResult")]
        assert statuses == ["ACCEPTED", "REFUSED", "ACCEPTED"]
        assert not (home / "inbox" / "secretariat-1.go").exists()

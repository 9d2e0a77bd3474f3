"""The real ``declarations`` command, as an operator and a payroll vendor run it (SQLite store)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from declarations import samples

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"


def run(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DECLARATIONS_HOME": str(home), "DECLARATIONS_NOW": NOW}
    environment.pop("DECLARATIONS_DATABASE_URL", None)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "declarations.channels.cli", *args], capture_output=True,
                          env=environment, cwd=home, timeout=120)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    assert run(home, "init").returncode == 0
    loaded = run(home, "directory", "load", str(REPO / "fixtures" / "demo" / "directory.xml"))
    assert loaded.returncode == 0, loaded.stderr
    return home


def signed_file(home: Path, name: str, element, key="sender-1001") -> Path:
    unsigned = home / f"{name}.unsigned.xml"
    unsigned.write_bytes(samples.to_bytes(element))
    result = run(home, "sign", str(unsigned), "--key", str(KEYS / f"{key}.key.pem"),
                 "--cert", str(KEYS / f"{key}.cert.pem"))
    assert result.returncode == 0, result.stderr
    path = home / f"{name}.xml"
    path.write_bytes(result.stdout)
    return path


def hire(message_id: str, inss: str = "85073100130"):
    return samples.dimona("In", message_id=message_id, sender_id="1001", noss="123456749", INSS=inss,
                          StartingDate=dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH")


def test_submit_prints_a_signed_result_and_exits_by_status(home):
    good = signed_file(home, "good", hire("cli-1"))
    bad = signed_file(home, "bad", hire("cli-2", inss="85073100131"))
    first = run(home, "submit", str(good))
    assert first.returncode == 0, first.stderr
    result = etree.fromstring(first.stdout)
    assert result.tag == "{urn:declarations:result:v1}DeclarationResult"
    assert result.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None
    assert b"ACCEPTED" in first.stderr
    both = run(home, "submit", str(good), str(bad))
    assert both.returncode == 1
    wrapper = etree.fromstring(both.stdout)
    assert wrapper.tag == "{urn:declarations:result:v1}DeclarationResults"
    ids = [r.findtext("{urn:declarations:result:v1}DeclarationId") for r in wrapper]
    statuses = [r.findtext("{urn:declarations:result:v1}Status") for r in wrapper]
    assert ids[0] == result.findtext("{urn:declarations:result:v1}DeclarationId")  # the retry
    assert statuses == ["ACCEPTED", "REFUSED"]
    assert b"C001" in both.stderr


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")
def test_xmlsec1_verifies_a_receipt_against_engine_cert(home):
    cert = home / "engine.pem"
    printed = run(home, "engine-cert")
    assert printed.returncode == 0 and printed.stdout.startswith(b"-----BEGIN CERTIFICATE-----")
    cert.write_bytes(printed.stdout)
    receipt = home / "receipt.xml"
    receipt.write_bytes(run(home, "submit", str(signed_file(home, "x", hire("cli-x", "92021402348")))).stdout)
    check = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(cert), "--enabled-key-data", "x509",
                            "--enabled-reference-uris", "empty", str(receipt)], capture_output=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_validate_runs_without_init_and_stores_nothing(tmp_path):
    empty_home = tmp_path / "never-initialised"
    empty_home.mkdir()
    document = signed_file(empty_home, "d", samples.dimona(
        "In", message_id="v-1", sender_id="1001", noss="123456749", INSS="85073100130",
        StartingDate=dt.date(2025, 11, 20), EndingDate=dt.date(2025, 11, 19), JointCommissionNbr="302",
        WorkerType="OTH"))
    checked = run(empty_home, "validate", str(document))
    assert checked.returncode == 1
    result = etree.fromstring(checked.stdout)
    assert result.findtext("{urn:declarations:result:v1}DeclarationId") == "0"
    assert [a.findtext("{urn:declarations:result:v1}Code")
            for a in result.iter("{urn:declarations:result:v1}Anomaly")] == ["D001"]
    assert not (empty_home / "declarations.sqlite").exists()


def test_directory_export_round_trips(home, tmp_path):
    exported = run(home, "directory", "export")
    assert exported.returncode == 0
    again = tmp_path / "again.xml"
    again.write_bytes(exported.stdout)
    assert run(home, "directory", "load", str(again)).returncode == 0
    assert run(home, "directory", "export").stdout == exported.stdout


def test_a_bad_directory_is_refused_whole(home, tmp_path):
    before = run(home, "directory", "export").stdout
    broken = tmp_path / "broken.xml"
    broken.write_bytes(before.replace(b"<NOSSRegistrationNbr>555123433</NOSSRegistrationNbr>",
                                      b"<NOSSRegistrationNbr>55512343</NOSSRegistrationNbr>", 1))
    refused = run(home, "directory", "load", str(broken))
    assert refused.returncode == 1 and b"directory refused" in refused.stderr
    assert run(home, "directory", "export").stdout == before


@pytest.mark.parametrize("args,env", [
    (("submit", "/nonexistent.xml"), {}),
    (("submit", "x.xml"), {"DECLARATIONS_MAX_MESSAGE_BYTES": "lots"}),
    (("submit", "x.xml"), {"DECLARATIONS_NOW": "2025-11-15T10:00:00"}),
    (("batch", "run"), {"DECLARATIONS_BATCH_WORKERS": "0"}),
    (("batch", "run"), {"DECLARATIONS_BATCH_PARALLEL_MIN_BYTES": "-1"}),
    (("batch", "run"), {"DECLARATIONS_BATCH_LEASE_SECONDS": "abc"}),  # was read at import: exit 70 until session 9
    (("batch", "run"), {"DECLARATIONS_BATCH_LEASE_SECONDS": "0"}),
    (("serve",), {"DECLARATIONS_INBOX_POLL_SECONDS": "-2"}),  # was logged, and 2 s used
    (("serve",), {"DECLARATIONS_INBOX_POLL_SECONDS": "nan"}),
    (("serve",), {"DECLARATIONS_INBOX_POLL_SECONDS": "1e10"}),  # beyond what threading waits (the watcher died)
    (("batch", "run"), {"DECLARATIONS_BATCH_LEASE_SECONDS": "1"}),  # shorter than what keeps it alive
    (("frobnicate",), {}),
])
def test_usage_errors_exit_2_and_say_why(home, args, env):
    result = run(home, *args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() and b"Traceback" not in result.stderr
    for name in env:  # why: the setting that is not usable is named
        assert name.encode() in result.stderr, result.stderr


def test_demo_shows_receipts(tmp_path):
    shown = run(tmp_path, "demo", env={"DECLARATIONS_NOW": ""})
    assert shown.returncode == 0, shown.stderr
    text = shown.stderr.decode()
    for expected in ("ACCEPTED", "REFUSED", "C001", "(retry)", "DeclarationResult"):
        assert expected in text


def test_archive_returns_the_original_bytes_and_the_receipt(home):
    document = signed_file(home, "arch", hire("cli-arch", "05061214559"))
    submitted = run(home, "submit", str(document))
    declaration_id = etree.fromstring(submitted.stdout).findtext("{urn:declarations:result:v1}DeclarationId")
    original = run(home, "archive", declaration_id)
    assert original.returncode == 0 and original.stdout == document.read_bytes()
    assert run(home, "archive", declaration_id, "--result").stdout.rstrip(b"\n") == submitted.stdout.rstrip(b"\n")
    assert run(home, "archive", "999999").returncode == 1


def test_a_broken_store_is_reported_without_a_traceback(tmp_path):
    broken = tmp_path / "not-a-database.sqlite"
    broken.write_bytes(b"this is not SQLite")
    result = run(tmp_path, "directory", "export", env={"DECLARATIONS_DATABASE_URL": f"sqlite:///{broken}"})
    assert result.returncode == 70
    assert b"internal error" in result.stderr and b"Traceback" not in result.stderr

"""Azurite, the Azure Storage emulator, for the table and queue tests.

``azurite`` (session) starts ``node_modules/.bin/azurite`` (installed by ``make test`` from the
pinned package-lock.json) with blob, queue and table services on free loopback ports, in-memory
persistence and telemetry off, and stops it at the end. The account is the emulator's usual
``devstoreaccount1``, but with a key made up for this run (``AZURITE_ACCOUNTS``), so no key is
written anywhere. Azurite runs in a temporary directory (its working directory; ``--location``
cannot be combined with ``--inMemoryPersistence``), where its output is logged. ``table_prefix`` (function) gives each test its own table names; ``own_azurite`` (module) is an emulator
of the module's own, for tests whose sweeps read every record in the store.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Azurite:
    """A running emulator: its ports, account key and connection string."""

    host: str
    blob_port: int
    queue_port: int
    table_port: int
    account_name: str
    account_key: str
    pid: int

    def endpoint(self, service: str) -> str:
        port = {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}[service]
        return f"http://{self.host}:{port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.endpoint('blob')};QueueEndpoint={self.endpoint('queue')};"
            f"TableEndpoint={self.endpoint('table')};"
        )


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _start(workdir: Path, key: str) -> tuple[subprocess.Popen, list[int]]:
    blob, queue, table = _free_ports(3)
    log_path = workdir / "azurite.log"
    env = dict(os.environ, AZURITE_ACCOUNTS=f"{ACCOUNT}:{key}")
    args = [
        str(AZURITE_BIN),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        "--inMemoryPersistence", "--disableTelemetry", "--silent", "--skipApiVersionCheck", "--loose",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=workdir, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if all(_accepts(p) for p in (blob, queue, table)):
            return proc, [blob, queue, table]
        time.sleep(0.1)
    _stop(proc)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"Azurite did not start listening on ports {blob}/{queue}/{table} within "
                       f"{START_TIMEOUT_S:.0f}s (exit code {proc.returncode}). Its output:\n{tail}")


@contextmanager
def running_azurite(workdir: Path) -> Iterator[Azurite]:
    """An Azurite of its own in ``workdir``, stopped on exit (``azurite`` is the session's one;
    ``own_azurite`` one per test module, for tests whose sweeps read every record in the store)."""
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE_BIN.relative_to(REPO_ROOT)} is missing): "
                    "run make test, which installs it", pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("Node.js is not on PATH, and Azurite needs it: install Node.js 20, then run make test",
                    pytrace=False)
    key = base64.b64encode(secrets.token_bytes(64)).decode("ascii")   # made up for this run
    error: Exception | None = None
    for _ in range(3):   # a free port can be taken between choosing it and Azurite binding it
        try:
            proc, (blob, queue, table) = _start(workdir, key)
            break
        except RuntimeError as exc:
            error = exc
    else:
        pytest.fail(str(error), pytrace=False)
    try:
        yield Azurite(host="127.0.0.1", blob_port=blob, queue_port=queue, table_port=table,
                      account_name=ACCOUNT, account_key=key, pid=proc.pid)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A running Azurite (blob, queue, table) on free loopback ports; stopped after the session."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def own_azurite(tmp_path_factory):
    """An Azurite for one test module alone: nothing another test wrote is in its tables."""
    with running_azurite(tmp_path_factory.mktemp("own-azurite")) as emulator:
        yield emulator


@pytest.fixture
def table_prefix() -> str:
    """Table names of this test only (``TablesStore(..., table_prefix=...)``)."""
    return "t" + uuid.uuid4().hex[:12]

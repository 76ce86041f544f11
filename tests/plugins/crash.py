"""Fixtures and helpers for the crash and fault matrices (tests/test_crash_*.py).

A worker is a real subprocess: ``python -m shared triage --run-id N`` (the queue worker's
command-line twin: the same pipeline, client and store). ``crash_env`` points it at the fake
workspace, a store (``storage``: SQLite or Azurite) and the channel stand-ins; ``load_case``
puts a corpus failure into the fake workspace under a run id unique in a shared Azurite;
``sweep_later`` runs the sweeps that follow, in process, with the clock moved on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Mapping

import pytest

from shared.config import Settings
from tests.fakes.channel_services import ChannelServices
from tests.helpers import corpus_doc

ROOT = Path(__file__).resolve().parents[2]
CASES = {"repair": "dev-043", "submit": "dev-055", "email": "dev-015"}   # TIMEOUT -> RETRY; RESOURCE -> resized rerun; DATA -> SEND_EMAIL
ENDPOINT = {"repair": "runs/repair", "submit": "runs/submit"}
KEEP_ENV = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")


@pytest.fixture(params=["sqlite", "azurite"])
def storage(request, tmp_path):
    """The store a worker uses, by its TRIAGE_STORAGE value: a SQLite file, or the Azurite tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'triage.db'}"
    return request.getfixturevalue("azurite").connection_string


def crash_env(fake: Any, storage: str, channels: ChannelServices, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    return {**keep, "DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": fake.token, "TRIAGE_STORAGE": storage,
            "TRIAGE_MODE": "act", "TRIAGE_ACTING_TIMEOUT": "1m", "TRIAGE_MAX_WORKERS": "16",
            "TRIAGE_WEBHOOK_URL": channels.hook_url, "TRIAGE_WEBHOOK_SECRET": channels.webhook_secret,
            "TRIAGE_NOTIFY_VIA": "webhook", "TRIAGE_ESCALATE_VIA": "webhook", **extra}


def load_case(fake: Any, case: str) -> int:
    doc = corpus_doc(case)
    doc.pop("history", None)
    doc["run"]["run_id"] = 7_000_000_000 + uuid.uuid4().int % 1_000_000_000   # unique in a shared Azurite
    return fake.load(doc)


def start_worker(env: Mapping[str, str], run_id: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shared", "triage", "--run-id", str(run_id), "--quiet", *args],
                            cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sweep_later(env: Mapping[str, str], minutes: tuple[int, ...] = (2, 5)) -> None:
    """The sweeps that follow, in process, with the clock past TRIAGE_ACTING_TIMEOUT."""
    from shared.app.runtime import open_runtime
    from shared.store import now_ms
    from shared.triage import act_due, retry_notifications

    settings = Settings.from_env(dict(env))
    with open_runtime(settings) as rt:
        client = rt.client()
        for m in minutes:
            act_due(settings, client=client, store=rt.store, notifier=rt.notifier, now=now_ms() + m * 60_000)
            retry_notifications(settings, client=client, store=rt.store, notifier=rt.notifier,
                                now=now_ms() + m * 60_000)


def stored_record(env: Mapping[str, str], run_id: int) -> Any:
    from shared.store import open_store

    with open_store(Settings.from_env(dict(env))) as store:
        return store.get(f"{run_id}-0")


def writes_that_took_effect(fake: Any, kind: str) -> int:
    return len(fake.repairs) if kind == "repair" else len(fake.submitted)


def kill_while_held(fake: Any, proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` while the fake workspace holds its request (``hold_fault`` injected
    beforehand), then let the held request end."""
    try:
        assert fake.holding.wait(60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)                       # the process dies mid-call
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        fake.release.set()
        if proc.poll() is None:
            proc.kill()

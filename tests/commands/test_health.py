"""``python -m shared health``: the command-line twin of ``GET /api/health``: the same figures
(from the same function), exit 0 when healthy and 1 with one line when something is stuck, the
store named on stderr, ``-o json|table``, and ``--recount`` to count now instead of reading the
last sweep's summary."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from blueprints.health import health_report
from shared.app.lifecycle import deadline_ms, publish_summary
from shared.cli import main
from shared.config import Settings
from shared.store import DecisionRecord, now_ms, open_store
from shared.store.spend import add_spend, day_of

REPO = Path(__file__).resolve().parents[2]
MINUTE_MS = 60_000


def _run(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _env(tmp_path, **more):
    return {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}", "TRIAGE_MODE": "act",
            "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net", "TRIAGE_BUDGET_USD_PER_DAY": "20", **more}


def _retrying(store, key="101-0", *, next_at):
    """An act-mode action waiting for its next send (a passing failure)."""
    rec = DecisionRecord(decision_key=key, job_id="7", run_id=int(key.split("-")[0]), mode="act", status="retrying",
                         action="RETRY", category="TIMEOUT", action_result={"attempts": 1, "next_at": next_at})
    assert store.claim(rec).won
    return store.get(key, "7")


def test_healthy_exits_0_with_the_endpoints_figures_and_names_the_store(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        _retrying(store, next_at=now_ms() + MINUTE_MS)
        add_spend(store, 1.5, day=day_of(), job_id="7")
        publish_summary(settings, store, now=now_ms())          # what the sweep keeps
    code, out, err = _run(["health", "-o", "json"], env)
    assert code == 0, err
    assert err.splitlines() == [f"store: SQLite file {tmp_path / 't.db'} (TRIAGE_STORAGE)"]
    body = json.loads(out)
    assert body["status"] == "ok" and body["lifecycle"]["retrying"] == 1 and body["lifecycle"]["past_deadline"] == 0
    assert body["budget"] == {"usd_per_day": 20.0, "today_usd": 1.5, "today_model_usd": 0.0}
    status, endpoint = health_report(env)                        # the same figures as GET /api/health
    assert status == 200
    figures = {k: v for k, v in body["lifecycle"].items() if k not in ("stuck_keys", "undelivered_keys",
                                                                         "summary_age_s")}
    assert figures == {k: v for k, v in endpoint["lifecycle"].items() if k != "summary_age_s"}
    assert {k: body[k] for k in ("version", "mode", "integrations", "channels")} == \
        {k: endpoint[k] for k in ("version", "mode", "integrations", "channels")}
    assert "stuck_keys" not in endpoint["lifecycle"]               # the anonymous endpoint: counts only

    code, out, err = _run(["health"], env)                       # the table
    assert code == 0
    assert "actions retrying" in out and "spent today (USD)" in out and "every decision is moving on" in out


def test_stuck_exits_1_with_one_line_saying_what_and_the_keys(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        rec = _retrying(store, next_at=now_ms() - 2 * 3600 * 1000)   # due two hours ago: no sweep moved it on
        assert deadline_ms(rec, settings) < now_ms()
        publish_summary(settings, store, now=now_ms())
    code, out, err = _run(["health", "-o", "json"], env)
    assert code == 1
    assert err.splitlines()[-1] == "error: unhealthy: 1 decision(s) past their deadline"
    assert len(err.splitlines()) == 2                            # the store, then what is stuck
    body = json.loads(out)
    assert body["status"] == "stuck" and body["lifecycle"]["stuck_keys"] == [rec.decision_key]
    assert health_report(env)[0] == 503                          # the endpoint agrees
    code, out, err = _run(["health", "--quiet"], env)
    assert code == 1 and err.splitlines() == ["error: unhealthy: 1 decision(s) past their deadline"]
    assert rec.decision_key in out


def test_recount_counts_now_without_a_sweep_summary(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        _retrying(store, next_at=now_ms() - 2 * 3600 * 1000)
    code, out, _ = _run(["health", "-o", "json"], env)         # no sweep ran yet: nothing to report
    assert code == 0 and json.loads(out)["lifecycle"]["verdict"] == "no sweep summary yet"
    code, out, err = _run(["health", "--recount", "-o", "json"], env)
    assert code == 1 and "1 decision(s) past their deadline" in err
    assert json.loads(out)["lifecycle"]["past_deadline"] == 1
    with open_store(settings) as store:                          # --recount writes nothing
        from shared.app.lifecycle import HEALTH_KEY, HEALTH_KIND
        assert store.state_get(HEALTH_KIND, HEALTH_KEY) is None


def test_a_stuck_approval_makes_health_exit_1(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    at = now_ms() - 3600 * 1000
    rec = DecisionRecord(decision_key="202-0", job_id="7", run_id=202, mode="act", status="acted",
                         action="SEND_EMAIL", category="PERMISSION",
                         decision={"proposed_action": "RETRY", "approval": "approving",
                                   "approval_history": [{"state": "approving", "by": "owner", "at": at}]})
    with open_store(settings) as store:
        assert store.claim(rec).won
    code, out, err = _run(["health", "--recount", "-o", "json"], env)
    assert code == 1 and json.loads(out)["lifecycle"]["approving"] == 1
    assert json.loads(out)["lifecycle"]["stuck_keys"] == ["202-0"]


def test_a_store_that_cannot_be_read_exits_1(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "a" * 88 +
            f";TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    code, out, err = _run(["health", "-o", "json"], _env(tmp_path, TRIAGE_STORAGE=conn))
    assert code == 1 and err.splitlines()[-1] == "error: unhealthy: the decision store cannot be read"
    assert err.splitlines()[0].startswith("store: Azure Table Storage account devstoreaccount1")
    assert json.loads(out)["budget"]["today_usd"] is None


def test_invalid_settings_are_one_line_and_exit_1(tmp_path):
    code, out, err = _run(["health"], _env(tmp_path, TRIAGE_MODE="sometimes"))
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ConfigError: ") and "TRIAGE_MODE" in line


def test_health_runs_as_a_program(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}, **_env(tmp_path),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "shared", "health", "-o", "json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lifecycle"]["verdict"] == "no decisions yet"
    assert done.stderr.startswith("store: SQLite file ")


def test_a_sweep_stopped_for_more_than_a_week_is_still_reported(tmp_path):
    """The sweep's summary must outlive any outage of the sweep: it used to be kept a week
    (a TTL), so after eight days without a sweep ``health`` found no summary and said healthy
    ('no sweep summary yet'). The clock of the ``health`` process is moved by libfaketime."""
    import libfaketime

    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        _retrying(store, next_at=now_ms() + MINUTE_MS)
        publish_summary(settings, store, now=now_ms())           # the last sweep, then none for 8 days
    _, preload = libfaketime.get_reload_information()
    done = subprocess.run([sys.executable, "-m", "shared", "health", "-o", "json", "--quiet"], cwd=REPO,
                          env={**os.environ, **env, **preload, "FAKETIME": "+8d", "DONT_FAKE_MONOTONIC": "1"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    body = json.loads(done.stdout)
    assert body["status"] == "stuck" and "has not run" in body["lifecycle"]["verdict"], body["lifecycle"]


def test_decisions_with_no_sweep_summary_at_all_are_reported(tmp_path):
    """Decisions older than the sweep's grace and no summary: the sweep has never run (a timer
    that never fires, a sweep that fails before it counts). health used to say healthy ('no
    sweep summary yet') for as long as that lasted."""
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:
        rec = DecisionRecord(decision_key="101-0", job_id="7", run_id=101, mode="act", status="retrying",
                             action="RETRY", category="TIMEOUT", created_at=now_ms() - 60 * MINUTE_MS,
                             action_result={"attempts": 1, "next_at": now_ms() - 50 * MINUTE_MS})
        assert store.claim(rec).won
    code, out, err = _run(["health", "-o", "json"], env)
    assert code == 1, out
    assert "no sweep has run" in json.loads(out)["lifecycle"]["verdict"]


def test_a_fresh_install_without_a_sweep_yet_is_healthy(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env)
    with open_store(settings) as store:               # a decision just made: the first sweep is minutes away
        assert store.claim(DecisionRecord(decision_key="102-0", job_id="7", run_id=102, mode="act",
                                          status="decided", action="RETRY", category="TIMEOUT")).won
    code, out, err = _run(["health", "-o", "json"], env)
    assert code == 0, out


def test_recount_counts_a_stuck_approval_of_an_older_decision_as_the_sweep_does(tmp_path):
    """Approval links outlive the week health reads: an approval noted as open is counted however
    old its decision."""
    from shared.app.approvals import open_approvals

    env = _env(tmp_path)
    settings = Settings.from_env(env)
    at = now_ms() - 3600 * 1000
    rec = DecisionRecord(decision_key="303-0", job_id="7", run_id=303, mode="act", status="acted",
                         action="SEND_EMAIL", category="PERMISSION", created_at=now_ms() - 10 * 86400 * 1000,
                         decision={"proposed_action": "RETRY", "approval": "approving",
                                   "approval_history": [{"state": "approving", "by": "owner", "at": at}]})
    with open_store(settings) as store:
        assert store.claim(rec).won
        code, out, _ = _run(["health", "--recount", "-o", "json"], env)
        assert code == 0 and json.loads(out)["lifecycle"]["approving"] == 0     # not noted: older than the week
        from shared.app.approvals import _edit_open
        _edit_open(store, settings, add=("303-0", "7"))                         # what approving notes first
        assert open_approvals(store) == [("303-0", "7")]
    code, out, err = _run(["health", "--recount", "-o", "json"], env)
    assert code == 1 and json.loads(out)["lifecycle"]["stuck_keys"] == ["303-0"]

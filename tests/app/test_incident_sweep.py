"""One incident per outage, end to end: twelve jobs failing the same way with their retries spent,
found by one sweep in act mode, page PagerDuty once (one dedup_key naming the twelve), and their
owners' notices go to Teams. Everything over real HTTP: the fake workspace (demo/workspace.py),
the Events API v2 and Teams stand-ins (tests/fakes/channel_services.py), the production
runtime, sweep, pipeline and notifiers."""

from __future__ import annotations

import time

import pytest

from demo.workspace import make_snapshot
from shared.app.runtime import open_runtime
from shared.app.sweep import run_sweep
from shared.config import Settings
from shared.notify import incidents
from shared.notify.routing import resolve_recovered
from tests.fakes.channel_services import ChannelServices

STORAGE_503 = ("shaded.databricks.azurebfs.org.apache.hadoop.fs.azurebfs.contracts.exceptions."
               "AbfsRestOperationException: Operation failed: \"The server is busy.\", 503, PUT, "
               "https://lake01.dfs.core.windows.net/raw/{name}/part-00001.parquet?action=flush, ServerBusy")


@pytest.fixture
def services():
    s = ChannelServices().start()
    yield s
    s.stop()


def _settings(fake, services, tmp_path, **extra):
    env = {"DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": fake.token, "TRIAGE_MODE": "act",
           "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'triage.db'}",
           "TRIAGE_ESCALATE_VIA": "pagerduty", "TRIAGE_NOTIFY_VIA": "teams",
           "PAGERDUTY_EVENTS_URL": services.events_url, "PAGERDUTY_ROUTING_KEY": services.routing_key,
           "TEAMS_WEBHOOK_URL": services.teams_url, **extra}
    return Settings.from_env(env)


def _load_outage(fake, n, *, start, error=STORAGE_503, first_job=1, repairs=(11, 12, 13)):
    names = []
    for i in range(n):
        job_id = first_job + i
        name = f"ingest-{job_id:02d}"
        fake.load(make_snapshot(run_id=9000 + job_id, job_id=job_id, job_name=name, start_time=start + i * 1000,
                                repair_ids=repairs, error=error.format(name=name)))
        names.append(name)
    return names


def test_twelve_jobs_failing_the_same_way_make_one_pagerduty_incident(fake_databricks, services, tmp_path):
    now = int(time.time() * 1000)
    names = _load_outage(fake_databricks, 12, start=now - 20 * 60_000)
    settings = _settings(fake_databricks, services, tmp_path)

    report = run_sweep(settings, inline=True)

    assert report.ok, report.errors
    assert len(report.enqueued) == 12
    events = services.pagerduty_events()
    assert events and all(e["routing_key"] == services.routing_key for e in events)
    assert all(s.body["routing_key"] == services.routing_key for s in services.to("/v2/enqueue"))
    assert len({e["dedup_key"] for e in events}) == 1                     # exactly one incident
    assert len(services.alerts) == 1
    last = events[-1]["payload"]
    assert last["summary"].startswith("12 jobs failing: storage account lake01.dfs.core.windows.net answering 503")
    for name in names:
        assert name in last["summary"]
    listed = last["custom_details"]["incident"]["jobs"]
    assert sorted(j["name"] for j in listed) == names and last["custom_details"]["incident"]["jobs_failing"] == 12
    assert last["severity"] == "critical"
    # nothing escalated went to Teams (escalations page; Teams carries SEND_EMAIL notices)
    assert services.to(services.teams_path) == []

    with open_runtime(settings) as rt:
        records = rt.store.list()
        assert len(records) == 12 and {r.action for r in records} == {"ESCALATE"}
        assert all(r.status == "acted" and r.notification["status"] == "sent"
                   and r.notification["channel"] == "pagerduty" for r in records)
        assert {r.notification["dedup_key"] for r in records} == {events[0]["dedup_key"]}

    # A second sweep (the runs are found again: runs/list carries no repair history, and the
    # worker sees each is decided) pages nobody again.
    before = len(services.seen)
    assert run_sweep(settings, inline=True).ok
    assert len(services.seen) == before


def test_the_incident_resolves_when_the_jobs_recover(fake_databricks, services, tmp_path):
    now = int(time.time() * 1000)
    _load_outage(fake_databricks, 3, start=now - 20 * 60_000)
    settings = _settings(fake_databricks, services, tmp_path)
    run_sweep(settings, inline=True)
    dedup = services.pagerduty_events()[0]["dedup_key"]

    with open_runtime(settings) as rt:
        client = rt.client()
        # two of three runs repaired successfully by a person: still open
        for run_id in (9001, 9002):
            fake_databricks.finish_run(run_id, "SUCCESS")
        assert resolve_recovered(settings, client=client, store=rt.store, notifier=rt.notifier) == []
        assert services.alerts[dedup].status == "triggered"
        fake_databricks.finish_run(9003, "SUCCESS")
        report = run_sweep(settings, inline=True, runtime=rt)      # the sweep resolves it
        assert report.ok and report.incidents_resolved == 1
        assert services.alerts[dedup].status == "resolved"
        assert services.pagerduty_events()[-1] == {"routing_key": services.routing_key, "event_action": "resolve",
                                                   "dedup_key": dedup}
        # exactly once: another pass sends nothing
        assert resolve_recovered(settings, client=client, store=rt.store, notifier=rt.notifier) == []
        assert run_sweep(settings, inline=True, runtime=rt).incidents_resolved == 0
        key = rt.store.list()[0].notification["incident_key"]
        assert incidents.get(rt.store, key).status == "resolved"
    assert sum(1 for e in services.pagerduty_events() if e["event_action"] == "resolve") == 1


def test_owners_hear_how_many_other_jobs_fail_the_same_way(fake_databricks, services, tmp_path):
    now = int(time.time() * 1000)
    error = "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`sales`.`orders` cannot be found."
    _load_outage(fake_databricks, 3, start=now - 20 * 60_000, error=error, repairs=())
    settings = _settings(fake_databricks, services, tmp_path)
    run_sweep(settings, inline=True)
    cards = [s.body["attachments"][0]["content"] for s in services.to(services.teams_path)]
    assert len(cards) == 3                                  # each owner gets a notice
    assert services.pagerduty_events() == []                # SEND_EMAIL does not page
    texts = [" ".join(b.get("text", "") for b in c["body"]) for c in cards]
    assert "other job" not in texts[0]
    assert "2 other jobs fail the same way" in texts[2] and "ingest-01, ingest-02" in texts[2]


def test_a_person_marks_decisions_handled_and_the_page_resolves(fake_databricks, services, tmp_path):
    import io
    import json

    from shared.cli import main

    now = int(time.time() * 1000)
    _load_outage(fake_databricks, 2, start=now - 20 * 60_000)
    settings = _settings(fake_databricks, services, tmp_path)
    run_sweep(settings, inline=True)
    dedup = services.pagerduty_events()[0]["dedup_key"]
    env = dict(settings.extra)

    def handled(key):
        out, err = io.StringIO(), io.StringIO()
        code = main(["decisions", "handled", key], env=env, stdout=out, stderr=err)
        return code, json.loads(out.getvalue()), err.getvalue()

    code, first, _ = handled("9001-3")
    assert code == 0 and first["status"] == "handled" and first["resolved"] is None
    assert services.alerts[dedup].status == "triggered"             # the other job still fails
    code, second, _ = handled("9002-3")
    assert code == 0 and second["resolved"]["status"] == "resolved" and second["resolved"]["incident"] == dedup
    assert services.alerts[dedup].status == "resolved"
    code, again, _ = handled("9002-3")
    assert code == 0 and again["status"] == "already recovered"
    assert sum(1 for e in services.pagerduty_events() if e["event_action"] == "resolve") == 1
    out, err = io.StringIO(), io.StringIO()
    assert main(["decisions", "handled", "1-0"], env=env, stdout=out, stderr=err) == 1 and "no decision" in err.getvalue()


def _runtime(settings):
    from shared.app.runtime import build_notifier, build_secrets, build_store
    from shared.notify.client import ChannelClient

    fast = ChannelClient(attempts=3, backoff_s=0, sleep=lambda s: None, timeout_s=(2, 5))
    store = build_store(settings)
    secrets = build_secrets(settings)
    return open_runtime(settings, store=store, secrets=secrets,
                        notifier=build_notifier(settings, secrets, store=store, channel_client=fast))


def test_pagerduty_down_hands_the_page_to_teams(fake_databricks, services, tmp_path):
    now = int(time.time() * 1000)
    _load_outage(fake_databricks, 2, start=now - 20 * 60_000)
    settings = _settings(fake_databricks, services, tmp_path, TRIAGE_ESCALATE_VIA="pagerduty,teams")
    services.inject("/v2/enqueue", *([503] * 6))                  # three tries for each of two jobs
    with _runtime(settings) as rt:
        assert run_sweep(settings, inline=True, runtime=rt).ok
        records = rt.store.list()
    assert services.pagerduty_events() == []
    assert len(services.to(services.teams_path, accepted_only=True)) == 2
    for r in records:
        assert r.status == "acted" and r.notification["channel"] == "teams"
        assert [(c["channel"], c["status"], c.get("http_status")) for c in r.notification["channels"]] == [
            ("pagerduty", "failed", 503), ("teams", "sent", 202)]
    card = json_of(services.to(services.teams_path)[-1])
    assert "1 other job fails the same way" in card


def test_a_page_that_could_not_be_sent_is_sent_by_the_next_sweep(fake_databricks, services, tmp_path):
    now = int(time.time() * 1000)
    _load_outage(fake_databricks, 2, start=now - 20 * 60_000)
    settings = _settings(fake_databricks, services, tmp_path)
    # two jobs, three tries each, twice: when decided, and again by the same sweep's resend pass
    services.inject("/v2/enqueue", *([503] * 12))
    with _runtime(settings) as rt:
        run_sweep(settings, inline=True, runtime=rt)
        failed = rt.store.list()
        assert {r.status for r in failed} == {"failed"}
        assert all(r.notification["status"] == "failed" and r.notification["retryable"] for r in failed)
        report = run_sweep(settings, inline=True, runtime=rt)            # PagerDuty is back
        assert report.emails_resent == 2
        records = rt.store.list()
    assert {r.status for r in records} == {"acted"} and {r.notification["attempts"] for r in records} == {3}
    events = services.pagerduty_events()
    assert len(events) == 2 and len({e["dedup_key"] for e in events}) == 1
    assert events[-1]["payload"]["summary"].startswith("2 jobs failing")


def json_of(seen):
    import json

    return json.dumps(seen.body)

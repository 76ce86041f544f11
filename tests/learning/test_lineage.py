"""A wrong retry costs one run at most: our retry of a lineage that failed the same way is not
retried again. Pipeline tests on the fake workspace (real HTTP) and a SQLite store."""

from shared.config import Settings
from shared.learning.lineage import lineage_decisions, previous_retry
from shared.store import DecisionRecord
from shared.triage import triage_run
from tests.helpers import corpus_doc, make_snapshot


class RecordingNotifier:
    def __init__(self):
        self.calls = []

    def notify(self, snapshot, decision, record):
        self.calls.append((record.decision_key, decision.action.value, list(decision.notes)))
        return {"status": "sent", "to": ["owner@example.com"]}


ACT = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_MAX_WORKERS": "16"})


def _load(fake, case, **changes):
    doc = corpus_doc(case)
    doc.pop("history", None)
    for tid, out in changes.items():
        doc["task_outputs"][tid] = out
    return fake.load(doc)


def _fail_again(fake, run_id):
    """The repaired attempt ends the way the first one did (same output, same state message)."""
    fake.finish_run(run_id, "FAILED", "Workload failed, see run output for details")


def test_lineage_retry_that_failed_the_same_way_is_not_retried_again(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")            # TIMEOUT: Futures timed out -> RETRY
    notifier = RecordingNotifier()
    first = triage_run(run_id, ACT, client=client, store=store, notifier=notifier, act_now=True)
    assert (first.record.action, first.record.status) == ("RETRY", "acted")
    _fail_again(fake_databricks, run_id)
    second = triage_run(run_id, ACT, client=client, store=store, notifier=notifier, act_now=True)
    rec = second.record
    assert rec.decision_key == f"{run_id}-1"
    assert (rec.category, rec.action, rec.status) == ("TIMEOUT", "SEND_EMAIL", "acted")
    assert "retried once; it failed the same way" in rec.reason and rec.fingerprint == first.record.fingerprint
    # One rerun was spent, not max_retries of them; the owner got both attempts.
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    [(key, action, notes)] = notifier.calls
    assert (key, action) == (rec.decision_key, "SEND_EMAIL")
    assert any(n.startswith(f"attempt {run_id}-0 ") and "Futures timed out" in n for n in notes)
    assert any(n.startswith(f"attempt {run_id}-1 after the retry") for n in notes)


def test_lineage_retry_that_failed_differently_is_retried(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    triage_run(run_id, ACT, client=client, store=store, act_now=True)
    # The retry got further and hit a passing network error: a new failure, retried again.
    task_run = next(iter(corpus_doc("dev-043")["task_outputs"]))
    fake_databricks.load({**corpus_doc("dev-043"), "task_outputs": {task_run: {
        "error": "java.net.SocketException: Connection reset"}}, "run": fake_databricks.run(run_id)})
    _fail_again(fake_databricks, run_id)
    second = triage_run(run_id, ACT, client=client, store=store, act_now=True)
    assert (second.record.category, second.record.action) == ("NETWORK", "RETRY")
    assert len(fake_databricks.requests_to("runs/repair")) == 2


def test_lineage_infrastructure_repeat_goes_to_on_call(fake_databricks, client, store):
    doc = corpus_doc("dev-043")
    doc.pop("history", None)
    tid = next(iter(doc["task_outputs"]))
    doc["task_outputs"][tid] = {"error": "Cluster 0101-000000-abc was terminated while waiting on it to be ready: "
                                         "INSTANCE_UNREACHABLE"}
    run_id = fake_databricks.load(doc)
    first = triage_run(run_id, ACT, client=client, store=store, act_now=True)
    assert (first.record.category, first.record.action) == ("INFRASTRUCTURE", "RETRY")
    _fail_again(fake_databricks, run_id)
    second = triage_run(run_id, ACT, client=client, store=store, act_now=True)
    assert second.record.action == "ESCALATE" and "on-call must look" in second.record.reason


def test_lineage_shadow_decision_is_not_our_retry(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    shadow = Settings.from_env({"TRIAGE_MODE": "shadow"})
    triage_run(run_id, shadow, client=client, store=store)
    snap = make_snapshot("x")
    assert previous_retry(store, snap, str(run_id)) is None


def test_lineage_resubmitted_run_finds_the_original_decision(store):
    original = DecisionRecord(decision_key="5000-0", job_id="7", run_id=5000, category="RESOURCE",
                              action="RETRY_WITH_NEW_PARAMS", mode="act", status="acted", lineage="5000",
                              fingerprint="abc", excerpt="java.lang.OutOfMemoryError: Java heap space",
                              decision={"evidence": ["exception OutOfMemoryError"]})
    assert store.claim(original).won
    # The resubmitted one-time run has no job and names its lineage in the run name.
    doc = make_snapshot("java.lang.OutOfMemoryError: Java heap space").to_json()
    doc["run"] = {**doc["run"], "run_id": 6000, "run_name": "nightly [triage retry of run 5000]"}
    doc["run"].pop("job_id")
    doc.pop("job")
    from shared.snapshot import parse_snapshot

    snap = parse_snapshot(doc)
    assert [r.decision_key for r in lineage_decisions(store, snap, "5000")] == ["5000-0"]
    prev = previous_retry(store, snap, "5000")
    assert prev.decision_key == "5000-0" and prev.top_evidence == "exception OutOfMemoryError"


def test_a_job_run_that_names_another_lineage_in_its_run_name_does_not_join_it(fake_databricks, client, store):
    """Only the one-time runs we submit carry the lineage marker; a job's own run whose name (the
    job name, which anyone who edits the job chooses) imitates it stays its own lineage: it neither
    spends another job's retry budget nor reads that job's attempts into its own notification."""
    victim = DecisionRecord(decision_key="5000-0", job_id="7", run_id=5000, category="TIMEOUT", action="RETRY",
                            mode="act", status="acted", lineage="5000", fingerprint="abc",
                            excerpt="java.net.SocketTimeoutException: Read timed out reading sales_eu_private",
                            decision={"evidence": ["exception SocketTimeoutException"]})
    assert store.claim(victim).won
    doc = make_snapshot("java.net.SocketTimeoutException: Read timed out").to_json()
    doc.pop("history", None)
    doc["run"] = {**doc["run"], "run_id": 6000, "job_id": 8, "run_type": "JOB_RUN",
                  "run_name": "nightly [triage retry of run 5000]"}
    doc["job"] = {**doc["job"], "job_id": 8,
                  "settings": {**doc["job"]["settings"], "name": "nightly [triage retry of run 5000]"}}
    fake_databricks.load(doc)
    notifier = RecordingNotifier()
    result = triage_run(6000, ACT, client=client, store=store, notifier=notifier, use_llm=False, act_now=True)
    told = repr(notifier.calls) + repr(result.record.decision)
    assert "5000-0" not in told and "sales_eu_private" not in told
    assert store.retries("5000") == 0
    assert result.record.lineage == "6000"

"""No work twice: one lineage read per triaged run; a due action confirms the run with one runs/get
(plus the job) and does not read the failed tasks' output again."""

from shared.config import Settings
from shared.databricks.actions import backoff_seconds
from shared.store import Store
from shared.triage import act_due, triage_run
from tests.helpers import corpus_doc


class CountingStore(Store):
    """A real store that counts state reads per kind (every Store method delegates)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.state_reads: dict[str, int] = {}

    def claim(self, record):
        return self.inner.claim(record)

    def get(self, decision_key, job_id=None):
        return self.inner.get(decision_key, job_id)

    def update(self, record):
        return self.inner.update(record)

    def list(self, job_id=None, since_ms=None, until_ms=None, limit=None):
        return self.inner.list(job_id, since_ms, until_ms, limit)

    def state_get(self, kind, key):
        self.state_reads[kind] = self.state_reads.get(kind, 0) + 1
        return self.inner.state_get(kind, key)

    def state_put(self, kind, key, value, *, etag=None, if_absent=False, ttl_s=None):
        return self.inner.state_put(kind, key, value, etag=etag, if_absent=if_absent, ttl_s=ttl_s)


def _load(fake, case):
    doc = corpus_doc(case)
    doc.pop("history", None)
    return fake.load(doc)


def test_triage_reads_the_lineage_retry_count_once_and_uses_it(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    store.add_retry(str(run_id))
    counting = CountingStore(store)
    result = triage_run(run_id, Settings.from_env({"TRIAGE_MODE": "shadow"}), client=client, store=counting)
    assert counting.state_reads.get("lineage") == 1
    record = result.record
    assert record.action == "RETRY"
    # the count read is the one the back-off was planned with: one retry so far doubles the wait
    wait_s = (record.not_before - record.created_at) / 1000
    assert abs(wait_s - backoff_seconds(record.category, 1)) < 5, wait_s
    assert backoff_seconds(record.category, 1) != backoff_seconds(record.category, 0)


def test_act_due_confirms_the_run_with_one_runs_get_and_reads_no_output(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-065")
    settings = Settings.from_env({"TRIAGE_MODE": "act"})
    record = triage_run(run_id, settings, client=client, store=store).record
    assert record.status == "decided" and record.not_before > 0
    fake_databricks.clear_requests()
    [done] = act_due(settings, client=client, store=store, now=record.not_before + 1)
    assert done.status == "acted"
    paths = [r.path.rsplit("/api/2.2/jobs/", 1)[-1] for r in fake_databricks.requests]
    assert paths.count("runs/get") == 1 and "runs/get-output" not in paths
    assert paths.count("runs/repair") == 1 and len(paths) <= 3      # runs/get, jobs/get, the repair

"""shared.databricks against the local fake workspace: endpoints, pagination, retries, errors, auth."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import requests

import shared.databricks as dbx
from shared.config import Settings
from shared.databricks import (
    DATABRICKS_SCOPE,
    AzureIdentityCredential,
    DatabricksClient,
    PatCredential,
    RetryPolicy,
    is_retryable,
)
from shared.errors import (
    ConfigError,
    DatabricksAuthError,
    DatabricksConflict,
    DatabricksError,
    DatabricksNotFound,
    DatabricksUnavailable,
    SecretError,
)
from demo.workspace import (
    drop_fault,
    lost_answer_fault,
    make_snapshot,
    make_token,
    malformed_fault,
    slow_fault,
    status_fault,
)

ROOT = Path(__file__).resolve().parents[2]
AccessToken = namedtuple("AccessToken", "token expires_on")


class Sleeps(list):
    """Records requested waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(sleeps: Sleeps | None = None, **kw) -> RetryPolicy:
    return RetryPolicy(backoff_base_s=0, jitter=False, sleep=sleeps if sleeps is not None else Sleeps(), **kw)


def client_for(fake, *, token: str | None = None, sleeps: Sleeps | None = None, **kw) -> DatabricksClient:
    retry = kw.pop("retry", None) or policy(sleeps)
    return DatabricksClient(fake.url, PatCredential(token or fake.token), retry=retry, **kw)


def five_task_snapshot(run_id: int = 5001) -> dict:
    tasks = [{"task_key": f"t{i}", "result": "FAILED" if i == 4 else "SUCCESS"} for i in range(5)]
    return make_snapshot(run_id=run_id, tasks=tasks, repair_ids=(11, 12, 13))


# --- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize("host, fragment", [
    ("", "DATABRICKS_HOST"),
    ("http://adb-1.2.azuredatabricks.net", "https"),
    ("https://adb-1.2.azuredatabricks.net/some/path", "without a path"),
    ("ftp://adb-1.2.azuredatabricks.net", "not a workspace URL"),
])
def test_client_init_rejects_bad_host(host, fragment):
    with pytest.raises(ValueError, match=fragment):
        DatabricksClient(host, PatCredential("t" * 20))


def test_client_init_rejects_missing_credential_and_timeout():
    with pytest.raises(ValueError, match="credential"):
        DatabricksClient("https://adb-1.2.azuredatabricks.net", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        DatabricksClient("https://adb-1.2.azuredatabricks.net", PatCredential("t" * 20), timeout=0)


def test_client_init_adds_https_to_bare_host():
    c = DatabricksClient("adb-1.2.azuredatabricks.net/", PatCredential("t" * 20))
    assert c.host == "https://adb-1.2.azuredatabricks.net"


def test_retry_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="deadline_s"):
        RetryPolicy(deadline_s=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_pat_credential_rejects_empty_token():
    with pytest.raises(ValueError, match="DATABRICKS_TOKEN"):
        PatCredential("  ")


def test_from_settings_pat_reads_token_from_settings(fake_databricks, fake_databricks_env):
    fake_databricks.load(make_snapshot(run_id=7))
    client = DatabricksClient.from_settings(Settings.from_env(fake_databricks_env), retry=policy())
    assert client.get_run(7)["run_id"] == 7
    assert fake_databricks.requests[-1].auth == "valid"


def test_from_settings_token_argument_wins(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=7))
    settings = Settings.from_env({"DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_TOKEN": "wrong-token-value"})
    client = DatabricksClient.from_settings(settings, token=lambda: fake_databricks.token, retry=policy())
    assert client.get_run(7)["run_id"] == 7


def test_from_settings_missing_host_is_config_error():
    with pytest.raises(ConfigError, match="DATABRICKS_HOST"):
        DatabricksClient.from_settings(Settings.from_env({"DATABRICKS_TOKEN": make_token()}))


def test_from_settings_missing_token_is_secret_error():
    with pytest.raises(SecretError, match="DATABRICKS_TOKEN"):
        DatabricksClient.from_settings(Settings.from_env({"DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net"}))


def test_from_settings_bad_host_is_config_error():
    env = {"DATABRICKS_HOST": "http://adb-1.2.azuredatabricks.net", "DATABRICKS_TOKEN": make_token()}
    with pytest.raises(ConfigError, match="DATABRICKS_HOST"):
        DatabricksClient.from_settings(Settings.from_env(env))


def test_from_settings_azure_identity_uses_entra_credential(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=7))
    settings = Settings.from_env({"DATABRICKS_HOST": fake_databricks.url, "DATABRICKS_AUTH": "azure-identity"})
    cred = AzureIdentityCredential(FakeTokenCredential([AccessToken(fake_databricks.token, 10_000)]),
                                   clock=lambda: 1_000)
    client = DatabricksClient.from_settings(settings, credential=cred, retry=policy())
    assert isinstance(client.credential, AzureIdentityCredential)
    assert client.get_run(7)["run_id"] == 7


def test_module_import_does_not_load_requests_or_azure_identity():
    code = ("import sys, shared.databricks, shared.databricks.capture, shared.databricks.actions; "
            "bad = [m for m in ('requests', 'azure.identity') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_all_names_exist():
    for name in dbx.__all__:
        assert hasattr(dbx, name), name


# --- endpoints ----------------------------------------------------------------------------------

def test_get_run_returns_run_and_asks_for_history(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=42, repair_ids=(5,)))
    run = client_for(fake_databricks).get_run(42)
    assert run["run_id"] == 42
    assert [h["type"] for h in run["repair_history"]] == ["ORIGINAL", "REPAIR"]
    req = fake_databricks.requests_to("runs/get")[0]
    assert req.query == {"run_id": "42", "include_history": "true"}


def test_get_run_without_history_omits_repair_history(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=42, repair_ids=(5,)))
    run = client_for(fake_databricks).get_run(42, include_history=False)
    assert "repair_history" not in run


def test_get_run_follows_pagination_and_merges_arrays(fake_databricks):
    fake_databricks.page_size = 2
    fake_databricks.load(five_task_snapshot())
    run = client_for(fake_databricks).get_run(5001)
    assert [t["task_key"] for t in run["tasks"]] == ["t0", "t1", "t2", "t3", "t4"]
    assert [h.get("id") for h in run["repair_history"]] == [None, 11, 12, 13]
    assert len(run["job_clusters"]) == 1
    assert "next_page_token" not in run
    pages = fake_databricks.requests_to("runs/get")
    assert len(pages) == 3
    assert "page_token" not in pages[0].query and pages[1].query["page_token"] and pages[2].query["page_token"]


def test_get_run_missing_raises_not_found(fake_databricks):
    with pytest.raises(DatabricksNotFound) as info:
        client_for(fake_databricks).get_run(404404)
    assert info.value.status == 404 and info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert info.value.method == "GET" and "/api/2.2/jobs/runs/get?run_id=404404" in info.value.url


def test_get_run_output_returns_task_output(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=8, tasks=[{"task_key": "a", "result": "FAILED"}], error="boom"))
    out = client_for(fake_databricks).get_run_output(801)
    assert out["error"] == "boom"


def test_get_run_output_on_multi_task_parent_is_400_not_retried(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=8))
    sleeps = Sleeps()
    with pytest.raises(DatabricksError) as info:
        client_for(fake_databricks, sleeps=sleeps).get_run_output(8)
    assert type(info.value) is DatabricksError
    assert info.value.status == 400 and info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "multiple tasks" in info.value.message
    assert len(fake_databricks.requests) == 1 and sleeps == []


def test_get_job_returns_job(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=9, job_id=99))
    assert client_for(fake_databricks).get_job(99)["settings"]["name"] == "nightly-etl"


def test_get_job_missing_raises_not_found(fake_databricks):
    with pytest.raises(DatabricksNotFound) as info:
        client_for(fake_databricks).get_job(12345)
    assert info.value.status == 400 and info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_list_runs_yields_every_page_newest_first(fake_databricks):
    for i in range(5):
        fake_databricks.load(make_snapshot(run_id=100 + i, start_time=1_000_000 + i))
    runs = list(client_for(fake_databricks).list_runs(limit=2))
    assert [r["run_id"] for r in runs] == [104, 103, 102, 101, 100]
    reqs = fake_databricks.requests_to("runs/list")
    assert len(reqs) == 3
    assert reqs[0].query == {"limit": "2", "completed_only": "true", "expand_tasks": "true"}
    assert all("tasks" in r for r in runs)


def test_list_runs_filters(fake_databricks):
    for i in range(4):
        fake_databricks.load(make_snapshot(run_id=200 + i, job_id=1 if i % 2 else 2, start_time=2_000 + i))
    client = client_for(fake_databricks)
    assert [r["run_id"] for r in client.list_runs(job_id=1)] == [203, 201]
    got = client.list_runs(start_time_from=2_001, start_time_to=2_002, expand_tasks=False)
    runs = list(got)
    assert [r["run_id"] for r in runs] == [202, 201]
    assert all("tasks" not in r for r in runs)
    q = fake_databricks.requests_to("runs/list")[-1].query
    assert q["start_time_from"] == "2001" and q["start_time_to"] == "2002" and "expand_tasks" not in q


def test_list_runs_completed_only_skips_active_runs(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=300))
    fake_databricks.load(make_snapshot(run_id=301))
    client = client_for(fake_databricks)
    client.repair_run({"run_id": 301, "rerun_all_failed_tasks": True})   # 301 is running again
    assert [r["run_id"] for r in client.list_runs()] == [300]
    assert {r["run_id"] for r in client.list_runs(completed_only=False)} == {300, 301}


def test_list_runs_empty_page_yields_nothing(fake_databricks):
    assert list(client_for(fake_databricks).list_runs(job_id=1)) == []


def test_list_runs_rejects_limit_over_25(fake_databricks):
    with pytest.raises(ValueError, match="25"):
        list(client_for(fake_databricks).list_runs(limit=26))


def test_repair_run_returns_repair_id(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=400))
    answer = client_for(fake_databricks).repair_run({"run_id": 400, "rerun_all_failed_tasks": True})
    assert answer["repair_id"] == fake_databricks.run(400)["repair_history"][-1]["id"]
    assert fake_databricks.writes[0].body == {"run_id": 400, "rerun_all_failed_tasks": True}


def test_submit_run_returns_run_id(fake_databricks):
    body = {"run_name": "x", "tasks": [{"task_key": "a", "notebook_task": {"notebook_path": "/a"},
                                        "existing_cluster_id": "0101-abc"}]}
    answer = client_for(fake_databricks).submit_run(body)
    assert answer["run_id"] in fake_databricks.submitted


def test_run_now_returns_run_id(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=500, job_id=55))
    answer = client_for(fake_databricks).run_now({"job_id": 55})
    assert fake_databricks.run(answer["run_id"])["job_id"] == 55


def test_calls_counter_counts_pages_not_retries(fake_databricks):
    fake_databricks.page_size = 2
    fake_databricks.load(five_task_snapshot())
    fake_databricks.inject("runs/get", 503)
    client = client_for(fake_databricks)
    client.get_run(5001)
    assert client.calls["/api/2.2/jobs/runs/get"] == 1 + 2   # one call, two extra pages
    assert client.attempts == 4


# --- retries ------------------------------------------------------------------------------------

def test_request_honours_retry_after_on_429(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", status_fault(429, retry_after=3))
    sleeps = Sleeps()
    assert client_for(fake_databricks, sleeps=sleeps).get_run(1)["run_id"] == 1
    assert sleeps == [3.0]
    assert [r.status for r in fake_databricks.requests] == [429, 200]


def test_request_honours_retry_after_on_503(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", status_fault(503, retry_after=2))
    sleeps = Sleeps()
    client_for(fake_databricks, sleeps=sleeps).get_run(1)
    assert sleeps == [2.0]


def test_request_retries_5xx_drops_and_malformed_gateway_pages(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", 500, 502, drop_fault(), malformed_fault(502))
    sleeps = Sleeps()
    assert client_for(fake_databricks, sleeps=sleeps).get_run(1)["run_id"] == 1
    assert len(sleeps) == 4
    assert len(fake_databricks.requests) == 5


def test_request_backoff_is_exponential_with_jitter_bounds():
    p = RetryPolicy(backoff_base_s=1, backoff_max_s=8, rng=lambda: 1.0)
    assert [p.backoff(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    low = RetryPolicy(backoff_base_s=1, backoff_max_s=8, rng=lambda: 0.0)
    assert [low.backoff(n) for n in (1, 2, 3)] == [0.5, 1, 2]
    assert p.backoff(1, retry_after=7.5) == 7.5


def test_request_times_out_a_slow_answer_and_retries(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", slow_fault(1.0))
    client = client_for(fake_databricks, timeout=0.2)
    assert client.get_run(1)["run_id"] == 1
    assert client.attempts == 2


def test_request_gives_up_after_max_attempts(fake_databricks, caplog):
    fake_databricks.inject("runs/get", *([503] * 3))
    caplog.set_level(logging.INFO, logger="shared.databricks")
    with pytest.raises(DatabricksUnavailable) as info:
        client_for(fake_databricks, retry=policy(max_attempts=3)).get_run(1)
    assert info.value.status == 503 and info.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert "gave up after 3 attempts" in str(info.value)
    assert len(fake_databricks.requests) == 3
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 2


def test_request_deadline_stops_before_a_wait_that_would_pass_it(fake_databricks):
    fake_databricks.inject("runs/get", status_fault(429, retry_after=30))
    sleeps = Sleeps()
    retry = RetryPolicy(deadline_s=10, sleep=sleeps, clock=lambda: 0.0)
    with pytest.raises(DatabricksUnavailable, match="deadline"):
        client_for(fake_databricks, retry=retry).get_run(1)
    assert sleeps == [] and len(fake_databricks.requests) == 1


def test_request_deadline_bounds_total_retry_time(fake_databricks):
    fake_databricks.inject("runs/get", *([500] * 20))
    now = [0.0]
    retry = RetryPolicy(deadline_s=10, max_attempts=100, backoff_base_s=1, jitter=False,
                        sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    with pytest.raises(DatabricksUnavailable):
        client_for(fake_databricks, retry=retry).get_run(1)
    assert now[0] <= 10
    assert len(fake_databricks.requests) == 4     # waits 1 + 2 + 4; the next (8) would pass 10 s


def test_request_retries_could_not_acquire_lock(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", status_fault(400, error_code="COULD_NOT_ACQUIRE_LOCK"))
    assert client_for(fake_databricks).get_run(1)["run_id"] == 1


@pytest.mark.parametrize("status, code", [(400, "INVALID_PARAMETER_VALUE"), (400, None), (422, None)])
def test_request_does_not_retry_other_4xx(fake_databricks, status, code):
    fake_databricks.inject("runs/get", status_fault(status, error_code=code))
    sleeps = Sleeps()
    with pytest.raises(DatabricksError) as info:
        client_for(fake_databricks, sleeps=sleeps).get_run(1)
    assert info.value.status == status and info.value.error_code == code
    assert sleeps == [] and len(fake_databricks.requests) == 1


def test_repair_is_not_resent_after_an_ambiguous_failure(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=2))
    fake_databricks.inject("runs/repair", lost_answer_fault())
    with pytest.raises(DatabricksError):
        client_for(fake_databricks).repair_run({"run_id": 2, "rerun_all_failed_tasks": True})
    assert len(fake_databricks.requests_to("runs/repair")) == 1
    assert len([h for h in fake_databricks.run(2)["repair_history"] if h["type"] == "REPAIR"]) == 1


def test_repair_is_resent_when_throttled(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=2))
    fake_databricks.inject("runs/repair", 429, 503)
    answer = client_for(fake_databricks).repair_run({"run_id": 2, "rerun_all_failed_tasks": True})
    assert answer["repair_id"]
    assert len(fake_databricks.requests_to("runs/repair")) == 3


def test_repair_is_not_resent_after_500(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=2))
    fake_databricks.inject("runs/repair", 500)
    with pytest.raises(DatabricksError) as info:
        client_for(fake_databricks).repair_run({"run_id": 2, "rerun_all_failed_tasks": True})
    assert info.value.status == 500
    assert len(fake_databricks.requests_to("runs/repair")) == 1


def test_submit_with_idempotency_token_is_resent_and_creates_one_run(fake_databricks):
    body = {"run_name": "x", "idempotency_token": "777-0",
            "tasks": [{"task_key": "a", "notebook_task": {"notebook_path": "/a"}, "existing_cluster_id": "c-1"}]}
    fake_databricks.inject("runs/submit", lost_answer_fault())
    answer = client_for(fake_databricks).submit_run(body)
    assert len(fake_databricks.requests_to("runs/submit")) == 2
    assert list(fake_databricks.submitted) == [answer["run_id"]]


def test_submit_without_idempotency_token_is_not_resent(fake_databricks):
    body = {"run_name": "x", "tasks": [{"task_key": "a", "notebook_task": {"notebook_path": "/a"},
                                        "existing_cluster_id": "c-1"}]}
    fake_databricks.inject("runs/submit", lost_answer_fault())
    with pytest.raises(DatabricksError):
        client_for(fake_databricks).submit_run(body)
    assert len(fake_databricks.requests_to("runs/submit")) == 1


def test_connection_refused_is_retried_then_unavailable():
    sleeps = Sleeps()
    client = DatabricksClient("http://127.0.0.1:1", PatCredential(make_token()), retry=policy(sleeps, max_attempts=2))
    with pytest.raises(DatabricksUnavailable, match="cannot connect"):
        client.repair_run({"run_id": 1, "rerun_all_failed_tasks": True})   # never sent: safe to resend
    assert len(sleeps) == 1


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, code, cls", [
    (401, "UNAUTHENTICATED", DatabricksAuthError),
    (403, "PERMISSION_DENIED", DatabricksAuthError),
    (404, "RESOURCE_DOES_NOT_EXIST", DatabricksNotFound),
    (400, "RESOURCE_DOES_NOT_EXIST", DatabricksNotFound),
    (409, "RESOURCE_CONFLICT", DatabricksConflict),
    (400, "INVALID_STATE", DatabricksConflict),
    (400, "INVALID_STATE_TRANSITION", DatabricksConflict),
    (400, "INVALID_PARAMETER_VALUE", DatabricksError),
    (400, "MALFORMED_REQUEST", DatabricksError),
])
def test_errors_are_typed_by_status_and_error_code(fake_databricks, status, code, cls):
    fake_databricks.inject("runs/repair", status_fault(status, error_code=code, message="refused"))
    client = DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token), retry=policy())
    with pytest.raises(DatabricksError) as info:
        client.repair_run({"run_id": 1, "rerun_all_failed_tasks": True})
    err = info.value
    assert type(err) is cls
    assert (err.status, err.error_code, err.message, err.method) == (status, code, "refused", "POST")
    assert err.url.endswith("/api/2.2/jobs/runs/repair")


def test_error_with_non_json_body_keeps_status(fake_databricks):
    fake_databricks.inject("runs/get", malformed_fault(418))
    with pytest.raises(DatabricksError) as info:
        client_for(fake_databricks).get_run(1)
    assert info.value.status == 418 and info.value.error_code is None
    assert "502 Bad Gateway" in info.value.message


def test_malformed_json_success_answer_is_a_clear_error(fake_databricks):
    fake_databricks.inject("runs/get", malformed_fault(200))
    with pytest.raises(DatabricksError, match="not JSON") as info:
        client_for(fake_databricks).get_run(1)
    assert type(info.value) is DatabricksError


def test_wrong_token_raises_auth_error_without_retry(fake_databricks):
    sleeps = Sleeps()
    with pytest.raises(DatabricksAuthError) as info:
        client_for(fake_databricks, token=make_token(), sleeps=sleeps).get_run(1)
    assert info.value.status == 403
    assert sleeps == [] and fake_databricks.requests[0].auth == "invalid"


def test_token_never_in_errors_logs_or_repr(fake_databricks, caplog):
    caplog.set_level(logging.DEBUG)
    token = fake_databricks.token
    fake_databricks.inject("runs/get", 429, drop_fault(), status_fault(400, message=f"bad header Bearer {token}"))
    client = client_for(fake_databricks)
    with pytest.raises(DatabricksError) as info:
        client.get_run(1)
    texts = [str(info.value), repr(info.value), info.value.message, repr(client), repr(client.credential)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "retries should have been logged"
    assert all(token not in t for t in texts)
    assert "[REDACTED]" in info.value.message


# --- is_retryable -------------------------------------------------------------------------------

def _response(status: int, body: bytes = b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    return r


@pytest.mark.parametrize("outcome, expected", [
    (requests.ConnectionError("refused"), True),
    (requests.ConnectTimeout("slow connect"), True),
    (requests.ReadTimeout("slow answer"), True),
    (requests.exceptions.ChunkedEncodingError("cut"), True),
    (ConnectionResetError("reset"), True),
    (TimeoutError("late"), True),
    (requests.exceptions.InvalidURL("bad"), False),
    (requests.exceptions.SSLError("certificate verify failed"), False),
    (ValueError("no"), False),
    (_response(429), True),
    (_response(500), True),
    (_response(502), True),
    (_response(503), True),
    (_response(504), True),
    (_response(501), False),
    (_response(400, b'{"error_code": "COULD_NOT_ACQUIRE_LOCK", "message": "locked"}'), True),
    (_response(400, b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "no"}'), False),
    (_response(400, b"not json"), False),
    (_response(401), False),
    (_response(403), False),
    (_response(404), False),
    (_response(409), False),
    (DatabricksError("x", status=503), True),
    (DatabricksError("x", status=400, error_code="COULD_NOT_ACQUIRE_LOCK"), True),
    (DatabricksUnavailable("x"), True),
    (DatabricksAuthError("x", status=403), False),
    (DatabricksError("x", status=400, error_code="INVALID_PARAMETER_VALUE"), False),
    (None, False),
])
def test_is_retryable_table(outcome, expected):
    assert is_retryable(outcome) is expected


# --- Entra ID -----------------------------------------------------------------------------------

class FakeTokenCredential:
    """An azure-core TokenCredential stand-in: hands out the given tokens in order."""

    def __init__(self, tokens):
        self.tokens = list(tokens)
        self.scopes: list[tuple] = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        if not self.tokens:
            raise RuntimeError("no more tokens")
        return self.tokens.pop(0)


def test_entra_token_is_cached_and_refreshed_before_expiry(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    now = [1_000.0]
    source = FakeTokenCredential([AccessToken(fake_databricks.token, 1_000 + 3600)] * 2)
    cred = AzureIdentityCredential(source, clock=lambda: now[0])
    client = DatabricksClient(fake_databricks.url, cred, retry=policy())
    client.get_run(1)
    client.get_run(1)
    assert len(source.scopes) == 1 and source.scopes[0] == (DATABRICKS_SCOPE,)
    now[0] = 1_000 + 3600 - 301           # more than 5 minutes left: still cached
    client.get_run(1)
    assert len(source.scopes) == 1
    now[0] = 1_000 + 3600 - 299           # inside the 5-minute margin: fetched again
    client.get_run(1)
    assert len(source.scopes) == 2
    assert all(r.auth == "valid" for r in fake_databricks.requests)


def test_entra_token_refetched_once_after_401(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    fake_databricks.inject("runs/get", status_fault(401, error_code="UNAUTHENTICATED"))
    source = FakeTokenCredential([AccessToken(fake_databricks.token, 10**10)] * 2)
    client = DatabricksClient(fake_databricks.url, AzureIdentityCredential(source), retry=policy())
    assert client.get_run(1)["run_id"] == 1
    assert len(source.scopes) == 2


def test_entra_token_refused_twice_raises_auth_error(fake_databricks):
    source = FakeTokenCredential([AccessToken("not-the-workspace-token", 10**10)] * 3)
    client = DatabricksClient(fake_databricks.url, AzureIdentityCredential(source), retry=policy())
    fake_databricks.inject("runs/get", status_fault(401, error_code="UNAUTHENTICATED"))
    with pytest.raises(DatabricksAuthError):
        client.get_run(1)
    assert len(fake_databricks.requests) == 2


def test_entra_credential_failure_is_auth_error(fake_databricks):
    client = DatabricksClient(fake_databricks.url, AzureIdentityCredential(FakeTokenCredential([])), retry=policy())
    with pytest.raises(DatabricksAuthError, match="Entra"):
        client.get_run(1)
    assert fake_databricks.requests == []


def test_entra_credential_rejects_object_without_get_token():
    with pytest.raises(ValueError, match="TokenCredential"):
        AzureIdentityCredential(object())


def test_client_context_manager_closes_its_session(fake_databricks):
    fake_databricks.load(make_snapshot(run_id=1))
    with client_for(fake_databricks) as client:
        client.get_run(1)
        assert client._session is not None
    assert client._session is None

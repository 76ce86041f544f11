"""The decision store contract, run against both backends (SQLite file; Table Storage on Azurite),
plus the key/size codec and the backend choice of open_store."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from shared.store import _codec as codec
from shared.store._sqlite import SqliteStore
from shared.store._tables import TablesStore
from shared.config import Settings
from shared.errors import ConfigError, StoreError, StoreUnavailable
from shared.store import Claim, DecisionRecord, StateEntry, Store, Updated, now_ms, open_store

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"retry_total": 0, "connection_timeout": 2, "read_timeout": 5}

HOSTILE_KEYS = [
    "a/b\\c#d?e",
    "100%' OR ''='",
    "ctl\x00\x01\x1f\x7f\x85\x9f",
    "ünïcødé ключ 键 😀",
    "!u00e9 !2f !h ~ escape-lookalikes",
    "   ",
    "x" * 600,
]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _record(key: str = "100-0", job: str = "42", **kw) -> DecisionRecord:
    kw.setdefault("run_id", 100)
    return DecisionRecord(decision_key=key, job_id=job, **kw)


@pytest.fixture(params=["sqlite", "tables"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, tmp_path, request) -> Store:
    if backend == "sqlite":
        s: Store = SqliteStore(tmp_path / "store.db")
    else:
        azurite = request.getfixturevalue("azurite")
        s = TablesStore.from_connection_string(azurite.connection_string,
                                               table_prefix=request.getfixturevalue("table_prefix"),
                                               retry_total=2, retry_backoff_factor=0.1)
    s.check()
    yield s
    s.close()


@pytest.fixture
def storage_setting(backend, tmp_path, request) -> str:
    """A TRIAGE_STORAGE value for this backend (default table names: use unique keys)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("azurite").connection_string


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


# --- claim / get / update ----------------------------------------------------------------

def test_claim_first_writer_wins(store):
    claim = store.claim(_record(category="TIMEOUT", action="RETRY", confidence=0.9))
    assert isinstance(claim, Claim) and claim.won
    assert claim.record.etag
    assert claim.record.category == "TIMEOUT" and claim.record.confidence == 0.9


def test_claim_duplicate_loser_learns_winner(store):
    first = store.claim(_record(decided_by="rules", reason="first"))
    second = store.claim(_record(decided_by="llm", reason="second"))
    assert first.won and not second.won
    assert second.record.reason == "first" and second.record.decided_by == "rules"
    assert second.record.etag == first.record.etag


def test_claim_same_key_other_job_is_separate(store):
    assert store.claim(_record(job="1")).won
    assert store.claim(_record(job="2")).won


def test_get_returns_stored_record(store):
    rec = _record(run_id=2**40, workspace="adb-1.7.azuredatabricks.net", lineage="99",
                  decision={"evidence": [{"task_key": "t", "error": "boom"}]}, not_before=5)
    won = store.claim(rec).record
    got = store.get("100-0", job_id="42")
    assert got == won == rec
    assert got.etag == won.etag
    assert got.run_id == 2**40 and got.decision["evidence"][0]["error"] == "boom"


def test_get_without_job_finds_record(store):
    store.claim(_record(key="7-1", job="77"))
    assert store.get("7-1").job_id == "77"


def test_get_missing_returns_none(store):
    assert store.get("nope-0") is None
    assert store.get("nope-0", job_id="42") is None


def test_update_with_current_etag_succeeds(store):
    rec = store.claim(_record()).record
    before = rec.updated_at
    rec.status, rec.action_result = "acted", {"repair_id": 7}
    result = store.update(rec)
    assert isinstance(result, Updated) and result.ok
    assert result.record.etag != rec.etag
    assert result.record.updated_at >= before
    stored = store.get("100-0", "42")
    assert stored.status == "acted" and stored.action_result == {"repair_id": 7}
    assert stored.etag == result.record.etag


def test_update_stale_etag_conflicts_and_returns_current(store):
    rec = store.claim(_record()).record
    mine, theirs = DecisionRecord.from_dict(rec.to_dict(), rec.etag), DecisionRecord.from_dict(rec.to_dict(), rec.etag)
    theirs.status = "acting"
    assert store.update(theirs).ok
    mine.status = "failed"
    result = store.update(mine)
    assert not result.ok
    assert result.record.status == "acting"
    assert store.get("100-0", "42").status == "acting"


def test_update_missing_record_is_not_ok(store):
    ghost = _record(key="404-0")
    ghost.etag = 'W/"nothing"'
    result = store.update(ghost)
    assert not result.ok and result.record is None


def test_update_without_etag_raises(store):
    with pytest.raises(ValueError, match="etag"):
        store.update(_record())


def test_claim_unknown_status_raises(store):
    with pytest.raises(ValueError, match="status"):
        store.claim(_record(status="bogus"))


# --- list ---------------------------------------------------------------------------------

def test_list_by_job_and_time_range_newest_first(store):
    base = 1_700_000_000_000
    for i, job in enumerate(["1", "2", "1", "1", ""]):
        store.claim(_record(key=f"{i}-0", job=job, run_id=i, created_at=base + i * 1000))
    assert [r.decision_key for r in store.list()] == ["4-0", "3-0", "2-0", "1-0", "0-0"]
    assert [r.decision_key for r in store.list(job_id="1")] == ["3-0", "2-0", "0-0"]
    assert [r.decision_key for r in store.list(job_id="")] == ["4-0"]
    assert [r.decision_key for r in store.list(since_ms=base + 2000)] == ["4-0", "3-0", "2-0"]
    assert [r.decision_key for r in store.list(job_id="1", since_ms=base + 1000, until_ms=base + 3000)] == ["2-0"]
    assert [r.decision_key for r in store.list(limit=2)] == ["4-0", "3-0"]
    assert all(r.etag for r in store.list())


# --- state: lineage, watermark, cache, conditions -------------------------------------------

def test_lineage_counter_counts_retries(store):
    assert store.retries("555") == 0
    assert store.add_retry("555") == 1
    assert store.add_retry("555") == 2
    assert store.retries("555") == 2
    assert store.retries("556") == 0


def test_incr_from_many_threads_loses_no_count(store):
    errors = []

    def bump():
        try:
            store.incr("counter", "shared", attempts=200)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.state_get("counter", "shared").value["count"] == 8


def test_watermark_round_trip(store):
    assert store.watermark("adb-1.azuredatabricks.net") is None
    store.set_watermark("adb-1.azuredatabricks.net", 1_700_000_000_123)
    store.set_watermark("adb-1.azuredatabricks.net", 1_700_000_000_456)
    assert store.watermark("adb-1.azuredatabricks.net") == 1_700_000_000_456


def test_cache_entry_expires_and_counts_as_absent(store):
    store.cache_put("fp-long", {"category": "CODE"}, ttl_s=3600)
    store.cache_put("fp-short", {"category": "NETWORK"}, ttl_s=1)
    store.state_put("email", "owner", {"sent": 1}, ttl_s=1)
    assert store.cache_get("fp-short") == {"category": "NETWORK"}
    assert store.state_put("email", "owner", {"sent": 2}, if_absent=True) is None
    time.sleep(1.1)
    assert store.cache_get("fp-short") is None
    assert store.cache_get("fp-long") == {"category": "CODE"}
    assert store.state_get("llmcache", "fp-long").expires_at > now_ms()
    again = store.state_put("email", "owner", {"sent": 2}, if_absent=True)
    assert again is not None and store.state_get("email", "owner").value == {"sent": 2}


def test_state_if_absent_only_once(store):
    first = store.state_put("lock", "run-1", {"owner": "a"}, if_absent=True)
    second = store.state_put("lock", "run-1", {"owner": "b"}, if_absent=True)
    assert isinstance(first, StateEntry) and first.etag
    assert second is None
    assert store.state_get("lock", "run-1").value == {"owner": "a"}


def test_state_put_with_etag_is_conditional(store):
    entry = store.state_put("watermark", "ws", {"ms": 1})
    newer = store.state_put("watermark", "ws", {"ms": 2}, etag=entry.etag)
    assert newer is not None and newer.etag != entry.etag
    assert store.state_put("watermark", "ws", {"ms": 3}, etag=entry.etag) is None
    assert store.state_put("watermark", "absent", {"ms": 3}, etag=entry.etag) is None
    assert store.state_get("watermark", "ws").value == {"ms": 2}


def test_state_put_etag_and_if_absent_together_raises(store):
    with pytest.raises(ValueError):
        store.state_put("k", "v", {}, etag='W/"x"', if_absent=True)


# --- hostile keys and values, limits ---------------------------------------------------------

@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:20])
def test_hostile_keys_round_trip(store, key):
    claim = store.claim(_record(key=key, job=key))
    assert claim.won
    assert store.claim(_record(key=key, job=key)).won is False
    got = store.get(key, job_id=key)
    assert got.decision_key == key and got.job_id == key
    assert [r.decision_key for r in store.list(job_id=key)] == [key]
    assert store.state_put(key, key, {"k": key}, if_absent=True) is not None
    assert store.state_get(key, key).value == {"k": key}
    assert store.state_get(key, key + "x") is None


def test_hostile_values_round_trip(store):
    nasty = "quote' \" back\\slash \x00nul \x1f\x7f ünï 😀 \r\n tab\t </xml> {json}"
    rec = _record(reason=nasty, excerpt=nasty, job_name=nasty,
                  feedback={"note": nasty, "nested": [nasty, 1, None, True, 2.5]})
    store.claim(rec)
    got = store.get("100-0", "42")
    assert (got.reason, got.excerpt, got.job_name) == (nasty, nasty, nasty)
    assert got.feedback == {"note": nasty, "nested": [nasty, 1, None, True, 2.5]}


def test_huge_values_truncated_with_marker(store):
    excerpt = "E" * 200_000
    rec = _record(excerpt=excerpt, reason="😀" * 40_000, action_request={"body": "B" * 500_000},
                  outcome={f"k{i}": "v" * 50 for i in range(5000)})
    won = store.claim(rec).record
    got = store.get("100-0", "42")
    assert got == won
    assert got.excerpt.startswith("EEEE") and got.excerpt.endswith("chars]")
    assert "…[truncated " in got.excerpt
    assert codec.utf16_len(got.excerpt) <= codec.LONG_UNITS
    assert codec.utf16_len(got.reason) <= codec.LONG_UNITS and got.reason.startswith("😀")
    assert "…[truncated " in got.action_request["body"]
    assert "truncated_json" in got.outcome or any("…[truncated" in v for v in got.outcome.values())
    props = codec.record_to_props(got)
    assert codec.entity_bytes("42", "100-0", props) < 1024 * 1024


def test_long_keys_stay_distinct(store):
    a, b = "k" * 5000, "k" * 4999 + "j"
    with pytest.raises(ValueError, match="longer"):
        store.claim(_record(key=a))
    a, b = "k" * 4000, "k" * 3999 + "j"
    assert store.claim(_record(key=a)).won and store.claim(_record(key=b)).won
    assert store.get(a, "42").decision_key == a and store.get(b, "42").decision_key == b


# --- concurrency and processes -------------------------------------------------------------

def test_twenty_threads_claim_one_key_one_winner(store):
    start = threading.Barrier(20)
    results: list[Claim] = []
    lock = threading.Lock()

    def claim(i: int) -> None:
        start.wait()
        c = store.claim(_record(key="race-0", reason=f"thread {i}"))
        with lock:
            results.append(c)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    winners = [c for c in results if c.won]
    assert len(winners) == 1
    assert {c.record.reason for c in results} == {winners[0].record.reason}


_CHILD = textwrap.dedent("""
    import json, sys
    from shared.config import Settings
    from shared.store import DecisionRecord, open_store
    op, key = sys.argv[1], sys.argv[2]
    with open_store(Settings.from_env({"TRIAGE_STORAGE": sys.argv[3]})) as store:
        if op == "claim":
            c = store.claim(DecisionRecord(decision_key=key, job_id="proc", run_id=1, reason=sys.argv[4]))
            print(json.dumps({"won": c.won, "reason": c.record.reason}))
        else:
            r = store.get(key, "proc")
            print(json.dumps(r.to_dict() if r else None))
""")


def _child(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-c", _CHILD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_record_written_by_one_process_read_by_another(storage_setting):
    key = _unique("xproc")
    writer = _child("claim", key, storage_setting, "from the writer")
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert json.loads(out) == {"won": True, "reason": "from the writer"}
    with open_store(Settings.from_env({"TRIAGE_STORAGE": storage_setting})) as store:
        assert store.get(key, "proc").reason == "from the writer"
    reader = _child("get", key, storage_setting)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert json.loads(out)["reason"] == "from the writer"


def test_processes_claim_one_key_one_winner(storage_setting):
    key = _unique("xrace")
    procs = [_child("claim", key, storage_setting, f"process {i}") for i in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["won"] for r in results) == 1
    assert len({r["reason"] for r in results}) == 1


# --- faults ----------------------------------------------------------------------------------

class _FlakyProxy:
    """A loopback HTTP proxy in front of Azurite that answers 503 to the first ``failures``
    requests (or to all, when ``failures`` is None) and forwards the rest unchanged."""

    def __init__(self, target_port: int, failures: int | None) -> None:
        self.failures, self.seen, self.target_port = failures, 0, target_port
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen += 1
                if proxy.failures is None or proxy.seen <= proxy.failures:
                    payload = b'{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"127.0.0.1:{proxy.target_port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def connection_string(self, azurite) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};"
                f"AccountKey={azurite.account_key};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{azurite.account_name};")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_transient_errors_are_retried(azurite, table_prefix):
    proxy = _FlakyProxy(azurite.table_port, failures=2)
    try:
        store = TablesStore.from_connection_string(proxy.connection_string(azurite), table_prefix=table_prefix,
                                                   retry_total=3, retry_backoff_factor=0.01)
        store.check()
        assert proxy.seen >= 3
        assert store.claim(_record()).won
    finally:
        proxy.close()


def test_persistent_errors_raise_store_unavailable(azurite, table_prefix):
    proxy = _FlakyProxy(azurite.table_port, failures=None)
    try:
        store = TablesStore.from_connection_string(proxy.connection_string(azurite), table_prefix=table_prefix,
                                                   retry_total=2, retry_backoff_factor=0.01)
        with pytest.raises(StoreUnavailable, match="503"):
            store.get("1-0", "1")
        assert proxy.seen == 3
    finally:
        proxy.close()


def test_unreachable_tables_names_the_setting(azurite):
    conn = (f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};AccountKey={azurite.account_key};"
            f"TableEndpoint=http://127.0.0.1:{_closed_port()}/{azurite.account_name}")
    with pytest.raises(StoreUnavailable) as info:
        open_store(Settings.from_env({"TRIAGE_STORAGE": conn}), **FAST)
    message = str(info.value)
    assert "check TRIAGE_STORAGE" in message and "\n" not in message
    assert azurite.account_key not in message
    with pytest.raises(StoreUnavailable, match="check AzureWebJobsStorage"):
        open_store(Settings.from_env({"AzureWebJobsStorage": conn}), **FAST)


def test_unreachable_sqlite_names_the_setting(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="check TRIAGE_STORAGE"):
        open_store(Settings.from_env({"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'file' / 'x.db'}"}))


def test_refused_credential_is_store_unavailable():
    from azure.core.exceptions import ClientAuthenticationError

    class Refusing:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("no identity here")

        def get_token_info(self, *scopes, **kwargs):
            raise ClientAuthenticationError("no identity here")

    url = f"https://127.0.0.1:{_closed_port()}"
    with pytest.raises(StoreUnavailable, match="check TRIAGE_STORAGE") as info:
        open_store(Settings.from_env({"TRIAGE_STORAGE": url}), credential=Refusing(), **FAST)
    assert "credentials" in str(info.value)


def test_wrong_account_key_is_store_error(azurite, table_prefix):
    conn = azurite.connection_string.replace(azurite.account_key, "A" * 88)
    with pytest.raises(StoreError):
        TablesStore.from_connection_string(conn, table_prefix=table_prefix, **FAST).check()


# --- open_store: which backend --------------------------------------------------------------

def test_open_store_unset_uses_sqlite_under_triage(tmp_path):
    with open_store(Settings.from_env({})) as store:
        assert isinstance(store, SqliteStore)
    assert (tmp_path / ".triage" / "triage.db").is_file()


def test_open_store_sqlite_url_relative_and_absolute(tmp_path):
    with open_store(Settings.from_env({"TRIAGE_STORAGE": "sqlite:///data/d.db"})) as store:
        assert store.path == tmp_path / "data" / "d.db"
    with open_store(Settings.from_env({"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'abs.db'}"})) as store:
        assert store.path == tmp_path / "abs.db"
    assert (tmp_path / "abs.db").is_file()


def test_open_store_connection_string_uses_tables(azurite):
    with open_store(Settings.from_env({"TRIAGE_STORAGE": azurite.connection_string})) as store:
        assert isinstance(store, TablesStore)
        assert store.endpoint == azurite.endpoint("table")


def test_open_store_falls_back_to_azurewebjobsstorage(azurite):
    with open_store(Settings.from_env({"AzureWebJobsStorage": azurite.connection_string})) as store:
        assert isinstance(store, TablesStore)
    env = {"AzureWebJobsStorage": azurite.connection_string, "TRIAGE_STORAGE": "sqlite:///mine.db"}
    with open_store(Settings.from_env(env)) as store:
        assert isinstance(store, SqliteStore)


def test_open_store_development_storage_means_local_emulator():
    for value in ("UseDevelopmentStorage=true", "usedevelopmentstorage=TRUE;"):
        store = open_store(Settings.from_env({"TRIAGE_STORAGE": value}), check=False)
        assert isinstance(store, TablesStore)
        assert store.endpoint == "http://127.0.0.1:10002/devstoreaccount1"
        store.close()


def test_open_store_account_url_uses_default_azure_credential():
    store = open_store(Settings.from_env({"TRIAGE_STORAGE": "https://acct.table.core.windows.net"}), check=False)
    assert isinstance(store, TablesStore)
    assert store.endpoint == "https://acct.table.core.windows.net"
    assert type(store.credential).__name__ == "DefaultAzureCredential"
    store.close()


def test_open_store_identity_based_webjobs_settings():
    env = {"AzureWebJobsStorage__accountName": "acct"}
    store = open_store(Settings.from_env(env), check=False)
    assert store.endpoint == "https://acct.table.core.windows.net"
    store.close()
    env = {"AzureWebJobsStorage__tableServiceUri": "https://other.table.core.windows.net/"}
    store = open_store(Settings.from_env(env), check=False)
    assert store.endpoint == "https://other.table.core.windows.net"
    store.close()


@pytest.mark.parametrize("value", ["nonsense", "http://127.0.0.1:10002/devstoreaccount1", "sqlite:///",
                                   "AccountName=x;TableEndpoint=http://127.0.0.1:1/x"])
def test_open_store_malformed_setting_is_config_error(value):
    with pytest.raises((ConfigError, StoreUnavailable), match="TRIAGE_STORAGE"):
        open_store(Settings.from_env({"TRIAGE_STORAGE": value}), check=False, **FAST)


# --- codec -----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", HOSTILE_KEYS[:-1] + ["plain-1.2_3", ""], ids=lambda k: repr(k)[:20])
def test_escape_key_is_reversible_and_table_safe(key):
    escaped = codec.escape_key(key)
    assert codec.unescape_key(escaped) == key
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_.!") for ch in escaped)


def test_escape_key_leaves_plain_keys_alone():
    assert codec.escape_key("123456-2") == "123456-2"
    assert codec.escape_key("adb-1.7.azuredatabricks.net") == "adb-1.7.azuredatabricks.net"


def test_escape_key_shortens_long_keys_with_digest():
    a, b = codec.escape_key("/" * 300), codec.escape_key("/" * 301)
    assert len(a) <= codec.MAX_KEY_CHARS and a != b
    with pytest.raises(ValueError):
        codec.unescape_key(a)


def test_fit_json_stays_valid_json():
    many = {f"key{i}": i for i in range(20_000)}
    text = codec.fit_json(many, 1000)
    assert codec.utf16_len(text) <= 1000 and "truncated" in json.loads(text)["truncated_json"]
    text = codec.fit_json({"a": "x" * 5000, "b": ["y" * 5000]}, 1000)
    assert codec.utf16_len(text) <= 1000 and json.loads(text)["a"].startswith("x")


def test_largest_entity_is_under_one_mib():
    assert codec.max_entity_bytes() < 1024 * 1024


def test_store_modules_do_not_import_azure_sdks():
    code = ("import sys, shared.store, shared.store._tables, shared.store._sqlite, shared.commands.decisions; "
            "print(sorted(m for m in sys.modules if m.startswith(('azure.data', 'azure.identity', 'azure.core'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), check=True).stdout
    assert out.strip() == "[]"

"""``python -m shared decisions list|show`` against a real store (SQLite file; Azurite once)."""

from __future__ import annotations

import io
import json
import time

import pytest

from shared.cli import main
from shared.config import Settings
from shared.store import DecisionRecord, open_store

HOUR_MS = 3600 * 1000


def _run(argv, env):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(tmp_path):
    return {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'cli.db'}"}


def _seed(env) -> None:
    now = int(time.time() * 1000)
    with open_store(Settings.from_env(env)) as store:
        store.claim(DecisionRecord(decision_key="1-0", job_id="10", run_id=1, category="TIMEOUT", action="RETRY",
                                   confidence=0.9, created_at=now - 48 * HOUR_MS))
        store.claim(DecisionRecord(decision_key="2-0", job_id="10", run_id=2, category="CODE", action="SEND_EMAIL",
                                   confidence=0.95, created_at=now - HOUR_MS))
        store.claim(DecisionRecord(decision_key="3-1", job_id="20", run_id=3, category="RESOURCE",
                                   action="RETRY_WITH_NEW_PARAMS", decided_by="llm", created_at=now,
                                   reason="line one\nline two\x1b[31m"))


def test_decisions_list_empty_store_says_so(env):
    code, out, err = _run(["decisions", "list"], env)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["created", "job_id", "decision_key", "category", "action", "conf", "by",
                                           "mode", "status"]
    assert out.splitlines()[1] == "(no decisions)"


def test_decisions_list_table_newest_first(env):
    _seed(env)
    code, out, err = _run(["decisions", "list"], env)
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[2] for r in rows] == ["3-1", "2-0", "1-0"]
    assert rows[0][1:5] == ["20", "3-1", "RESOURCE", "RETRY_WITH_NEW_PARAMS"]
    assert rows[1][5:] == ["0.95", "rules", "shadow", "decided"]


def test_decisions_list_filters_by_job_and_since(env):
    _seed(env)
    code, out, _ = _run(["decisions", "list", "--job", "10", "--format", "json"], env)
    assert code == 0 and [d["decision_key"] for d in json.loads(out)] == ["2-0", "1-0"]
    code, out, _ = _run(["decisions", "list", "--since", "24h", "--format", "json"], env)
    assert code == 0 and [d["decision_key"] for d in json.loads(out)] == ["3-1", "2-0"]
    code, out, _ = _run(["decisions", "list", "--job", "10", "--since", "2h", "--limit", "5"], env)
    assert code == 0 and [line.split()[2] for line in out.splitlines()[1:]] == ["2-0"]


def test_decisions_list_json_is_full_records(env):
    _seed(env)
    code, out, _ = _run(["decisions", "list", "--format", "json", "--limit", "1"], env)
    (doc,) = json.loads(out)
    assert code == 0
    assert doc["reason"] == "line one\nline two\x1b[31m" and doc["decided_by"] == "llm"
    assert doc["etag"] and doc["schema_version"] == 1


def test_decisions_show_prints_one_record(env):
    _seed(env)
    code, out, err = _run(["decisions", "show", "2-0"], env)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["decision_key"] == "2-0" and doc["category"] == "CODE" and doc["job_id"] == "10"
    code, out, _ = _run(["decisions", "show", "2-0", "--job", "10"], env)
    assert code == 0 and json.loads(out)["run_id"] == 2


def test_decisions_show_missing_key_exits_1(env):
    _seed(env)
    code, out, err = _run(["decisions", "show", "9-9"], env)
    assert (code, out) == (1, "")
    assert err == "error: no decision with key '9-9'\n"


def test_decisions_list_bad_since_is_one_line_error(env):
    code, out, err = _run(["decisions", "list", "--since", "soon"], env)
    assert (code, out) == (1, "")
    assert err == "error: ConfigError: --since: 'soon' is not a duration (use e.g. 90s, 15m, 24h, 7d)\n"


def test_decisions_unreachable_store_names_setting(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'blocker' / 'x.db'}"}
    code, out, err = _run(["decisions", "list"], env)
    assert (code, out) == (1, "")
    assert err.startswith("error: StoreUnavailable: ") and "check TRIAGE_STORAGE" in err
    assert err.count("\n") == 1


def test_decisions_default_store_is_local_sqlite(tmp_path):
    code, _, _ = _run(["decisions", "list"], {})
    assert code == 0
    assert (tmp_path / ".triage" / "triage.db").is_file()


def test_decisions_list_reads_table_storage(azurite):
    env = {"TRIAGE_STORAGE": azurite.connection_string}
    key = f"{time.time_ns()}-0"
    with open_store(Settings.from_env(env)) as store:
        store.claim(DecisionRecord(decision_key=key, job_id="cli-tables", run_id=5, category="NETWORK"))
    code, out, err = _run(["decisions", "list", "--job", "cli-tables", "--format", "json"], env)
    assert (code, err) == (0, "")
    assert [d["decision_key"] for d in json.loads(out)] == [key]
    code, out, _ = _run(["decisions", "show", key], env)
    assert code == 0 and json.loads(out)["category"] == "NETWORK"

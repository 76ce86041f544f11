"""``python -m shared decisions list|show`` against a real store (SQLite file; Azurite once)."""

from __future__ import annotations

import io
import json
import time

import pytest

from shared.cli import main
from shared.config import Settings
from shared.store import DecisionRecord, SqliteStore, open_store

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
    SqliteStore(env["TRIAGE_STORAGE"][len("sqlite:///"):]).check()   # an existing store with no decisions
    code, out, err = _run(["decisions", "list"], env)
    assert code == 0 and err.startswith("store: SQLite file ") and err.count("\n") == 1
    assert out == "(no decisions)\n"


def test_decisions_list_table_newest_first(env):
    _seed(env)
    code, out, err = _run(["decisions", "list"], env)
    assert code == 0 and err.splitlines()[-1] == "3 decisions shown"
    assert out.splitlines()[0].split() == ["CREATED", "JOB_ID", "JOB_NAME", "DECISION_KEY", "CATEGORY", "ACTION",
                                           "CONFIDENCE", "DECIDED_BY", "MODE", "STATUS"]
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[3] for r in rows] == ["3-1", "2-0", "1-0"]
    assert rows[0][1:6] == ["20", "-", "3-1", "RESOURCE", "RETRY_WITH_NEW_PARAMS"]
    assert rows[1][6:] == ["0.95", "rules", "shadow", "decided"]


def test_decisions_list_filters_by_job_and_since(env):
    _seed(env)
    code, out, _ = _run(["decisions", "list", "--job", "10", "-o", "json"], env)
    assert code == 0 and [d["decision_key"] for d in json.loads(out)] == ["2-0", "1-0"]
    code, out, _ = _run(["decisions", "list", "--since", "24h", "--output", "json"], env)
    assert code == 0 and [d["decision_key"] for d in json.loads(out)] == ["3-1", "2-0"]
    code, out, _ = _run(["decisions", "list", "--job", "10", "--since", "2h", "--limit", "5"], env)
    assert code == 0 and [line.split()[3] for line in out.splitlines()[2:]] == ["2-0"]
    code, out, _ = _run(["decisions", "list", "--format", "json"], env)        # the old flag still works
    assert code == 0 and len(json.loads(out)) == 3


def test_decisions_list_says_how_many_of_how_many(env):
    _seed(env)
    code, out, err = _run(["decisions", "list", "--limit", "2", "-o", "json"], env)
    assert code == 0 and len(json.loads(out)) == 2
    assert err.splitlines()[-1] == "2 of 3 decisions shown (use --limit to see more)"
    code, _, err = _run(["--quiet", "decisions", "list", "--limit", "2"], env)
    assert code == 0 and err == ""
    code, _, err = _run(["decisions", "list", "--limit", "2", "--quiet"], env)
    assert code == 0 and err == ""


def test_decisions_job_by_name(env):
    now = int(time.time() * 1000)
    with open_store(Settings.from_env(env)) as store:
        store.claim(DecisionRecord(decision_key="7-0", job_id="77", run_id=7, job_name="Nightly ETL",
                                   category="NETWORK", created_at=now))
        store.claim(DecisionRecord(decision_key="8-0", job_id="88", run_id=8, job_name="other", created_at=now))
    code, out, _ = _run(["decisions", "list", "--job", "nightly etl", "-o", "json"], env)
    assert code == 0 and [d["decision_key"] for d in json.loads(out)] == ["7-0"]
    code, out, _ = _run(["decisions", "show", "7-0", "--job", "Nightly ETL"], env)
    assert code == 0 and json.loads(out)["job_id"] == "77"
    code, _, err = _run(["decisions", "show", "7-0", "--job", "other"], env)
    assert code == 1 and "no decision with key '7-0' for job other" in err


def test_decisions_list_json_is_full_records(env):
    _seed(env)
    code, out, _ = _run(["decisions", "list", "-o", "json", "--limit", "1"], env)
    (doc,) = json.loads(out)
    assert code == 0
    assert doc["reason"] == "line one\nline two\x1b[31m" and doc["decided_by"] == "llm"
    assert doc["etag"] and doc["schema_version"] == 1


def test_decisions_show_prints_one_record(env):
    _seed(env)
    code, out, err = _run(["decisions", "show", "2-0"], env)
    assert code == 0 and err.startswith("store: ")
    doc = json.loads(out)
    assert doc["decision_key"] == "2-0" and doc["category"] == "CODE" and doc["job_id"] == "10"
    code, out, _ = _run(["decisions", "show", "2-0", "--job", "10"], env)
    assert code == 0 and json.loads(out)["run_id"] == 2


def test_decisions_show_missing_key_exits_1(env):
    _seed(env)
    code, out, err = _run(["--quiet", "decisions", "show", "9-9"], env)
    assert (code, out) == (1, "")
    assert err == "error: no decision with key '9-9'\n"


@pytest.mark.parametrize("argv", [["decisions", "list", "--since", "soon"], ["decisions", "list", "--since", "yesterday"],
                                  ["decisions", "list", "--limit", "-3"], ["decisions", "list", "--limit", "x"],
                                  ["decisions", "list", "-o", "yaml"], ["report", "--since", "yesterday"],
                                  ["export-finetune", "--out", "t.jsonl", "--valid-percent", "80"],
                                  ["triage", "--run-id", "1", "--timeout", "-1"]])
def test_bad_flag_values_are_usage_errors(env, argv, tmp_path):
    code, out, err = _run(argv, env)
    assert (code, out) == (2, "")
    assert "error: argument" in err and "(see '" in err
    assert not (tmp_path / "cli.db").exists()


def test_debug_is_accepted_after_the_command(env):
    code, _, err = _run(["decisions", "list", "--debug"], env)
    assert code == 1 and "Traceback" in err and "StoreMissing" in err
    code, _, err = _run(["decisions", "list"], env)
    assert code == 1 and "Traceback" not in err


def test_decisions_on_a_missing_store_says_so_and_creates_nothing(tmp_path):
    path = tmp_path / "typo" / "tirage.db"
    env = {"TRIAGE_STORAGE": f"sqlite:///{path}"}
    for argv in (["decisions", "list"], ["decisions", "show", "1-0"], ["report"],
                 ["feedback", "1-0", "--verdict", "correct"], ["export-finetune", "--out", str(tmp_path / "t.jsonl")]):
        code, out, err = _run(argv, env)
        assert (code, out) == (1, ""), argv
        assert err.splitlines()[-1].startswith("error: StoreMissing: no decision store: no SQLite file "), err
        assert "check TRIAGE_STORAGE; nothing was created" in err and len(err.splitlines()) == 2
    assert not path.exists() and not path.parent.exists()


def test_decisions_default_store_is_local_sqlite_and_named(tmp_path):
    code, _, err = _run(["decisions", "list"], {})
    assert code == 1 and "store: SQLite file .triage/triage.db (default; set TRIAGE_STORAGE)" in err
    assert not (tmp_path / ".triage").exists()


def test_decisions_missing_table_is_reported_not_created(azurite, table_prefix):
    from azure.data.tables import TableServiceClient

    from shared.errors import StoreMissing

    settings = Settings.from_env({"TRIAGE_STORAGE": azurite.connection_string})
    with pytest.raises(StoreMissing, match=f"no decisions table at .*{table_prefix}TriageDecisions"):
        open_store(settings, check=False, must_exist=True, table_prefix=table_prefix)
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        assert not [t for t in service.list_tables() if t.name.startswith(table_prefix)]
    with open_store(settings, table_prefix=table_prefix):          # a writer creates it
        pass
    open_store(settings, check=False, must_exist=True, table_prefix=table_prefix).close()


def test_decisions_list_reads_table_storage(azurite):
    env = {"TRIAGE_STORAGE": azurite.connection_string}
    key = f"{time.time_ns()}-0"
    with open_store(Settings.from_env(env)) as store:
        store.claim(DecisionRecord(decision_key=key, job_id="cli-tables", run_id=5, category="NETWORK"))
    code, out, err = _run(["decisions", "list", "--job", "cli-tables", "-o", "json"], env)
    assert code == 0 and "store: Azure Table Storage account devstoreaccount1 at http://127.0.0.1:" in err
    assert [d["decision_key"] for d in json.loads(out)] == [key]
    code, out, _ = _run(["decisions", "show", key], env)
    assert code == 0 and json.loads(out)["category"] == "NETWORK"

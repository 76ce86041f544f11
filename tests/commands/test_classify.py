import io
import json
import shutil

from shared.cli import main
from tests.helpers import CORPUS


def _run(argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_classify_json_lines_one_per_snapshot():
    code, out, err = _run(["classify", str(CORPUS / "dev-001.json"), str(CORPUS / "dev-043.json")])
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["case_id"] for r in rows] == ["dev-001", "dev-043"]
    assert rows[0]["action"] == "SEND_EMAIL" and rows[1]["action"] == "RETRY"
    assert {"case_id", "category", "action", "confidence", "decided_by", "reason"} <= set(rows[0])


def test_classify_folder_table_format():
    code, out, _ = _run(["classify", str(CORPUS), "--format", "table", "--no-llm"])
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["CASE_ID", "CATEGORY", "ACTION"]
    assert len(lines) == 2 + len(list(CORPUS.glob("*.json")))


def test_classify_malformed_snapshot_reported_others_classified(tmp_path):
    shutil.copy(CORPUS / "dev-001.json", tmp_path / "good.json")
    (tmp_path / "bad.json").write_text('{"snapshot_version": 1, "run": {}}')
    code, out, err = _run(["classify", str(tmp_path)])
    assert code == 1
    assert len(out.splitlines()) == 1 and json.loads(out)["case_id"] == "dev-001"
    assert err.count("\n") == 1 and "bad.json" in err and err.startswith("error: SnapshotError: ")


def test_classify_missing_file_is_one_line_error(tmp_path):
    code, out, err = _run(["classify", str(tmp_path / "nope.json")])
    assert code == 1 and out == "" and "nope.json: cannot read" in err


def test_classify_needs_no_cloud_settings(monkeypatch):
    # No DATABRICKS_*, no storage, no LLM settings: still classifies, offline.
    code, out, _ = _run(["classify", str(CORPUS / "dev-065.json")], env={})
    assert code == 0 and json.loads(out)["category"] == "INFRASTRUCTURE"


def test_cli_usage_error_exit_2():
    code, _, err = _run(["classify"])
    assert code == 2 and "error:" in err

"""The report's cause column shows the root-cause line the email shows first (the first line of the
excerpt that says something), not the excerpt's last line (often a '},', a docs link or a retry warning)."""

from shared.decide.rootcause import root_line
from shared.learning.report import build_report, render_text
from shared.store import DecisionRecord

EXCERPT = ("java.lang.OutOfMemoryError: Java heap space\n"
           "SparkException: Job aborted due to stage failure\n"
           "  },\n"
           "https://docs.databricks.com/en/error-messages/index.html\n"
           "WARN Retrying request (attempt 3 of 3)")


def test_root_line_is_the_first_line_that_says_something():
    assert root_line(EXCERPT) == "java.lang.OutOfMemoryError: Java heap space"
    assert root_line("{\n  },\nhttps://example.com/x\n[TABLE_OR_VIEW_NOT_FOUND] t") == "[TABLE_OR_VIEW_NOT_FOUND] t"
    assert root_line("") == ""
    assert len(root_line("x" * 500, limit=100)) == 100


def test_report_cause_column_uses_the_root_line():
    recs = [DecisionRecord(decision_key=f"{i}-0", job_id="7", run_id=i, category="RESOURCE",
                           action="RETRY_WITH_NEW_PARAMS", fingerprint="fp1", excerpt=EXCERPT, created_at=1000 + i)
            for i in range(2)]
    report = build_report(recs, since_ms=0, until_ms=10_000)
    [top] = report.top_fingerprints
    assert top["excerpt"] == "java.lang.OutOfMemoryError: Java heap space"
    text = render_text(report)
    assert "Java heap space" in text and "attempt 3 of 3" not in text

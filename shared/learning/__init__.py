"""Learning from what happened: people's feedback (``feedback``), the outcome of what we did
(``outcomes``), the report (``report``) and the fine-tuning export (``finetune``).
See docs/learning.md."""

from __future__ import annotations

from shared.learning.feedback import corrections_for, record_feedback
from shared.learning.finetune import export_finetune, load_records
from shared.learning.outcomes import check_outcomes, hopeless_key
from shared.learning.report import build_report, load_report, render_html, render_text

__all__ = [
    "corrections_for",
    "record_feedback",
    "export_finetune",
    "load_records",
    "check_outcomes",
    "hopeless_key",
    "build_report",
    "load_report",
    "render_html",
    "render_text",
]

"""Export confirmed decisions as OpenAI chat fine-tuning data (JSONL).

Each line is one example::

    {"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": "<the failure, as JSON, redacted>"},
                  {"role": "assistant", "content": "<the confirmed verdict, as JSON>"}]}

- The system prompt is ``shared.llm.SYSTEM_PROMPT`` (``PROMPT_VERSION`` is in the summary), so a
  model tuned on this data is asked the same way in production.
- The user turn has the shape of the production prompt (``shared.llm.build_request``) as far as
  a stored decision allows (job, failed tasks, the rules' verdict and evidence, the error
  excerpt); every string goes through ``shared.redact`` again on the way out.
- The assistant turn is the answer schema of ``shared.llm`` (``LLMAnswer``), validated.

Which decisions are *confirmed* (and what the label is) — see docs/learning.md:

1. feedback ``wrong`` with a ``correct_action``: the corrected action (and category, when given);
2. feedback ``correct``: the decision as made;
2a. an approval request a person answered (docs/trust.md): approved, the retry carried out
   (source ``approval``); rejected, the cautious decision as made (source ``rejection``);
3. no feedback, and a retry that succeeded — the app's own (act mode) or, for a retry decision in
   shadow mode, a person's rerun: the decision as made.

Everything else is left out: ``wrong`` without a correction, failed retries, decisions without
evidence either way, IGNORE / CANCELED (decided from the run state, never by the model), and a
label that pairs a retry with a category that is never retried (a correction "should have been
retried" on a CODE verdict needs the correct category too).
The validation split is deterministic: a decision goes to the validation file when the SHA-256
of its key falls in the first ``valid_percent`` of 100 buckets.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from shared.models import TRANSIENT, Action, Category
from shared.redact import redact, redact_obj
from shared.store import DecisionRecord

if TYPE_CHECKING:  # pragma: no cover
    from shared.store.base import Store

__all__ = [
    "LABEL_CONFIDENCE",
    "DEFAULT_VALID_PERCENT",
    "Example",
    "ExportSummary",
    "label_of",
    "user_content",
    "assistant_content",
    "to_example",
    "in_validation",
    "valid_path_for",
    "export_finetune",
    "load_records",
]

# The confidence written into confirmed labels: high, but not certainty.
LABEL_CONFIDENCE = 0.9
DEFAULT_VALID_PERCENT = 15
_MAX_EXCERPT = 6000
_MAX_TEXT = 1000
_RETRIES = (Action.RETRY.value, Action.RETRY_WITH_NEW_PARAMS.value)
# Categories a label may pair with a retry (the system prompt's rule; never PERMISSION, CODE, DATA,
# CONFIGURATION or UNKNOWN).
_RETRYABLE = frozenset({c.value for c in TRANSIENT} | {Category.DEPENDENCY.value})


@dataclass(frozen=True)
class Example:
    decision_key: str
    category: str           # the label's category
    source: str             # correction | feedback | outcome
    messages: tuple[dict[str, str], ...]

    def to_json(self) -> str:
        return json.dumps({"messages": list(self.messages)}, ensure_ascii=False)


@dataclass
class ExportSummary:
    train: int = 0
    valid: int = 0
    skipped: int = 0
    per_category: dict[str, Counter] = field(default_factory=dict)   # category -> {"train": n, "valid": n}
    per_source: Counter = field(default_factory=Counter)
    prompt_version: str = ""
    train_path: str = ""
    valid_path: str = ""

    def render(self) -> str:
        lines = [f"{self.train} training and {self.valid} validation example(s) "
                 f"(prompt {self.prompt_version}); {self.skipped} decision(s) not confirmed, left out"]
        if self.per_source:
            lines.append("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(self.per_source.items())))
        if self.per_category:
            width = max(len("CATEGORY"), *(len(c) for c in self.per_category))
            lines.append(f"{'CATEGORY'.ljust(width)}  TRAIN  VALID")
            for cat in sorted(self.per_category):
                c = self.per_category[cat]
                lines.append(f"{cat.ljust(width)}  {c['train']:>5}  {c['valid']:>5}")
        if self.train and self.train < 10:
            lines.append("note: OpenAI fine-tuning needs at least 10 training examples")
        return "\n".join(lines) + "\n"


def _system_prompt() -> tuple[str, str]:
    from shared.llm import PROMPT_VERSION, SYSTEM_PROMPT

    return SYSTEM_PROMPT, PROMPT_VERSION


def label_of(record: DecisionRecord) -> tuple[str, str, str] | None:
    """(category, action, source) of a confirmed decision, or None when it is not confirmed."""
    fb = record.feedback or {}
    out = record.outcome or {}
    verdict = fb.get("verdict")
    approval = str((record.decision or {}).get("approval") or "")
    if approval == "approved" and record.decided_by == "person" and verdict != "wrong":
        # A person approved the proposed retry: what was carried out is the label.
        category, action, source = record.category, record.action, "approval"
    elif approval == "rejected" and verdict != "wrong":
        # A person rejected the proposed retry: the cautious decision as made is the label.
        category, action, source = record.category, record.action, "rejection"
    elif verdict == "wrong":
        if not fb.get("correct_action"):
            return None
        category, action, source = fb.get("correct_category") or record.category, fb["correct_action"], "correction"
    elif verdict == "correct":
        category, action, source = record.category, record.action, "feedback"
    elif record.action in _RETRIES and (
            (record.mode == "act" and out.get("result") == "succeeded")
            or (record.mode == "shadow" and out.get("human_result") == "succeeded" and out.get("agreed") is True)):
        category, action, source = record.category, record.action, "outcome"
    else:
        return None
    if category not in {c.value for c in Category} - {Category.CANCELED.value}:
        return None
    if action not in {a.value for a in Action} - {Action.IGNORE.value}:
        return None
    if action in _RETRIES and category not in _RETRYABLE:
        return None   # e.g. "should have been retried" on a CODE verdict: the category needs correcting too
    return category, action, source


def _bounded(text: Any, limit: int) -> str:
    t = redact(str(text or "")).strip()
    if len(t) <= limit:
        return t
    half = (limit - 5) // 2
    return t[:half] + " […] " + t[-half:]


def user_content(record: DecisionRecord) -> str:
    """The failure as the model would see it, from what the decision stored (redacted JSON)."""
    d = record.decision or {}
    rules: dict[str, Any] = {"evidence": [str(e)[:160] for e in (d.get("evidence") or [])[:3]]}
    if (record.decided_by or "").split("+")[0] == "rules":
        rules = {"category": record.category, "confidence": round(float(record.confidence), 2), **rules}
    doc = {
        "job": {"name": str(record.job_name or "")[:120], "deciding_task": str(d.get("deciding_task") or "")},
        "failed_tasks": [{"task": str(t)} for t in (d.get("failed_tasks") or [])[:5]],
        "rules": rules,
        "error_excerpt": _bounded(record.excerpt or d.get("excerpt") or "", _MAX_EXCERPT),
    }
    return json.dumps(redact_obj(doc), ensure_ascii=False, separators=(",", ":"))


def _root_cause(record: DecisionRecord, category: str, source: str) -> str:
    fb = record.feedback or {}
    if source == "correction" and fb.get("comment"):
        return _bounded(fb["comment"], _MAX_TEXT)
    llm = (record.decision or {}).get("llm") or {}
    if isinstance(llm, Mapping) and llm.get("status") == "ok" and llm.get("category") == category \
            and llm.get("root_cause"):
        return _bounded(llm["root_cause"], _MAX_TEXT)
    lines = [ln.strip() for ln in (record.excerpt or "").splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    return _bounded(f"A {category} failure: {last}" if last else f"A {category} failure.", 400)


def _parameters(record: DecisionRecord, action: str) -> dict[str, Any]:
    params = (record.decision or {}).get("params") or {}
    out: dict[str, Any] = {"num_workers": None, "node_type": None, "spark_conf": []}
    if action != Action.RETRY_WITH_NEW_PARAMS.value or not isinstance(params, Mapping):
        return out
    if isinstance(params.get("num_workers"), int) and not isinstance(params.get("num_workers"), bool):
        out["num_workers"] = params["num_workers"]
    node = params.get("node_type") or params.get("node_type_id")
    if isinstance(node, str) and node:
        out["node_type"] = node[:64]
    conf = params.get("spark_conf")
    if isinstance(conf, Mapping):
        out["spark_conf"] = [{"key": str(k)[:128], "value": str(v)[:128]} for k, v in list(conf.items())[:20]]
    return out


def assistant_content(record: DecisionRecord, category: str, action: str, source: str) -> str:
    """The confirmed verdict in the model's answer schema (validated), as JSON."""
    fb = record.feedback or {}
    if source == "correction":
        fix = fb.get("comment") or ""
    else:
        fix = (record.decision or {}).get("suggested_fix") or ""
    answer = {
        "category": category,
        "confidence": LABEL_CONFIDENCE,
        "is_transient": action in _RETRIES,
        "root_cause": _root_cause(record, category, source),
        "recommended_action": action,
        "suggested_fix": _bounded(fix, _MAX_TEXT),
        "parameters": _parameters(record, action),
    }
    from shared.llm import LLMAnswer

    LLMAnswer.model_validate(answer)   # the label must be an answer the model is allowed to give
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def to_example(record: DecisionRecord, system_prompt: str | None = None) -> Example | None:
    """The fine-tuning example of a decision, or None when it is not confirmed."""
    label = label_of(record)
    if label is None:
        return None
    category, action, source = label
    system = system_prompt if system_prompt is not None else _system_prompt()[0]
    messages = (
        {"role": "system", "content": system},
        {"role": "user", "content": user_content(record)},
        {"role": "assistant", "content": assistant_content(record, category, action, source)},
    )
    return Example(record.decision_key, category, source, messages)


def in_validation(decision_key: str, percent: int = DEFAULT_VALID_PERCENT) -> bool:
    """Deterministic split: True for about ``percent`` % of decision keys."""
    bucket = int(hashlib.sha256(decision_key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return bucket < percent


def valid_path_for(train_path: str | Path) -> Path:
    """``train.jsonl`` -> ``train.valid.jsonl``."""
    p = Path(train_path)
    return p.with_name(f"{p.stem}.valid{p.suffix or '.jsonl'}")


def export_finetune(records: Iterable[DecisionRecord], train_path: str | Path, *,
                    valid_path: str | Path | None = None,
                    valid_percent: int = DEFAULT_VALID_PERCENT) -> ExportSummary:
    """Write the confirmed decisions among ``records`` to ``train_path`` and the validation file."""
    if not 0 <= valid_percent <= 50:
        raise ValueError("the validation share must be between 0 and 50 percent")
    system, version = _system_prompt()
    train_p = Path(train_path)
    valid_p = Path(valid_path) if valid_path else valid_path_for(train_p)
    if train_p.resolve() == valid_p.resolve():
        raise ValueError("the training and validation files must differ")
    summary = ExportSummary(prompt_version=version, train_path=str(train_p), valid_path=str(valid_p))
    seen: set[tuple[str, str]] = set()
    ordered = sorted(records, key=lambda r: (r.created_at, r.job_id, r.decision_key))
    with open(train_p, "w", encoding="utf-8", newline="\n") as train, \
            open(valid_p, "w", encoding="utf-8", newline="\n") as valid:
        for record in ordered:
            if record.status == "duplicate" or (record.job_id, record.decision_key) in seen:
                continue
            seen.add((record.job_id, record.decision_key))
            example = to_example(record, system)
            if example is None:
                summary.skipped += 1
                continue
            split = "valid" if in_validation(record.decision_key, valid_percent) else "train"
            (valid if split == "valid" else train).write(example.to_json() + "\n")
            setattr(summary, split, getattr(summary, split) + 1)
            summary.per_category.setdefault(example.category, Counter())[split] += 1
            summary.per_source[example.source] += 1
    return summary


def load_records(store: Store, *, since_s: int | None = None, now_ms: int | None = None) -> list[DecisionRecord]:
    """The decisions to export: all of them, or those of the last ``since_s`` seconds."""
    if since_s is None:
        return store.list()
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    return store.list(since_ms=now - int(since_s) * 1000)
